"""The Anthropic ingress: what the `anthropic` SDK sends becomes canonical requests, and what it
gets back (messages, the SSE event sequence, errors) is parsed by the SDK itself.

A miniature request path (ingress -> adapter -> fake upstream -> translator -> encoder, served by
aiohttp) lets the SDK talk to both an OpenAI and an Anthropic backend, streaming on and off.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aigw_config.config import ProviderConfig
from aigw_gateway.errors import GatewayError, InvalidRequest, UpstreamBadResponse, UpstreamRateLimited, render_error
from aigw_gateway.ingress.anthropic import INGRESS
from aigw_gateway.providers.anthropic import AnthropicAdapter, to_anthropic
from aigw_gateway.providers.openai import OpenAIAdapter
from aigw_gateway.wire.openai import openai_body
from aigw_gateway.streaming.sse import SSEParser
from tests.fakes.anthropic_fixtures import FAKE_ANTHROPIC_API_KEY, fake_anthropic  # noqa: F401
from tests.fakes.anthropic_provider import AnthropicBehaviour, FakeAnthropic
from tests.fakes.fixtures import FAKE_OPENAI_API_KEY, fake_openai  # noqa: F401
from tests.fakes.openai_provider import Behaviour

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
TOOLS = [{"name": "get_weather", "description": "Weather for a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
HELLO = [{"role": "user", "content": "hello world"}]


# --- a miniature request path ------------------------------------------------------------------

def mini_gateway(adapter: Any, provider: ProviderConfig, key: str, upstream_model: str) -> web.Application:
    async def messages(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        try:
            canonical = INGRESS.parse_request(body)
        except GatewayError as err:
            return error_response(err)
        stream = canonical["stream"]
        up = adapter.chat_request(provider, key, upstream_model, canonical, stream)
        async with httpx.AsyncClient(timeout=10) as client, client.stream(up.method, up.url, headers=up.headers, content=up.content) as resp:
            if resp.status_code >= 400:
                return error_response(adapter.error_for(resp.status_code, await resp.aread(), dict(resp.headers), "t"))
            if not stream:
                return web.json_response(INGRESS.render_response(adapter.chat_response(await resp.aread(), "t", upstream_model), body["model"]))
            translator = adapter.stream_translator("t", upstream_model)
            encoder = INGRESS.stream_encoder(body["model"], canonical)
            out = web.StreamResponse(headers={"content-type": INGRESS.stream_media_type})
            await out.prepare(request)
            try:
                try:
                    async for data in resp.aiter_raw():
                        for chunk in translator.feed(data):
                            await out.write(encoder.chunk(chunk))
                except httpx.TransportError:
                    pass
                for chunk in translator.finish():
                    await out.write(encoder.chunk(chunk))
                await out.write(encoder.end())
            except GatewayError as err:
                await out.write(encoder.error(err, "req_test"))
            await out.write_eof()
            return out

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    return app


def error_response(err: GatewayError) -> web.Response:
    return web.Response(status=err.status_code, body=render_error(err, "req_test", "anthropic"),
                        content_type="application/json", headers=err.headers)


@pytest.fixture(params=["openai", "anthropic"])
async def gateway(request, fake_openai, fake_anthropic) -> AsyncIterator[tuple[anthropic.AsyncAnthropic, Any]]:
    if request.param == "openai":
        fake, adapter, key, model = fake_openai, OpenAIAdapter(), FAKE_OPENAI_API_KEY, "fake"
    else:
        fake, adapter, key, model = fake_anthropic, AnthropicAdapter(), FAKE_ANTHROPIC_API_KEY, "claude-fake"
    provider = ProviderConfig(name=request.param, provider=request.param, baseURL=fake.base_url, has_api_key=True)
    server = TestServer(mini_gateway(adapter, provider, key, model))
    await server.start_server()
    client = anthropic.AsyncAnthropic(base_url=str(server.make_url("")).rstrip("/"), api_key="tenant-key", max_retries=0, timeout=10)
    try:
        yield client, fake
    finally:
        await client.close()
        await server.close()


# --- the SDK through the miniature path, every backend, streaming on and off --------------------

async def test_chat(gateway):
    client, _ = gateway
    r = await client.messages.create(model="client-model", max_tokens=64, system="be brief", messages=HELLO)
    assert r.id.startswith("msg_") and r.model == "client-model" and r.role == "assistant"
    assert [b.type for b in r.content] == ["text"] and r.content[0].text == "echo: hello world"
    assert r.stop_reason == "end_turn" and r.usage.input_tokens > 0 and r.usage.output_tokens > 0


async def test_stream(gateway):
    client, _ = gateway
    async with client.messages.stream(model="client-model", max_tokens=64, messages=HELLO) as s:
        text = "".join([t async for t in s.text_stream])
        final = await s.get_final_message()
    assert text == "echo: hello world" and final.content[0].text == text and final.model == "client-model"
    assert final.stop_reason == "end_turn" and final.usage.input_tokens > 0 and final.usage.output_tokens > 0
    events = [e.type async for e in await client.messages.create(model="m", max_tokens=64, messages=HELLO, stream=True)]
    assert events[0] == "message_start" and events[-2:] == ["message_delta", "message_stop"]
    assert events[1] == "content_block_start" and events[-3] == "content_block_stop"
    assert set(events[2:-3]) == {"content_block_delta"}


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_use_round_trip(gateway, stream):
    client, _ = gateway
    ask = [{"role": "user", "content": "weather in Oslo?"}]
    if stream:
        async with client.messages.stream(model="m", max_tokens=64, tools=TOOLS, messages=ask) as s:
            first = await s.get_final_message()
    else:
        first = await client.messages.create(model="m", max_tokens=64, tools=TOOLS, messages=ask)
    assert first.stop_reason == "tool_use"
    use = first.content[-1]
    assert (use.type, use.name, use.input) == ("tool_use", "get_weather", {"arg": "value"}) and use.id
    follow = [*ask, {"role": "assistant", "content": first.content},
              {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]}]
    second = await client.messages.create(model="m", max_tokens=64, tools=TOOLS, messages=follow)
    assert second.content[0].text == "echo: sunny" and second.stop_reason == "end_turn"


async def test_upstream_errors_in_anthropic_shape(gateway):
    client, fake = gateway
    fake.script(Behaviour(status=429, headers={"retry-after": "2"}))
    with pytest.raises(anthropic.RateLimitError) as exc:
        await client.messages.create(model="m", max_tokens=64, messages=HELLO)
    assert exc.value.body["error"]["type"] == "rate_limit_error" and exc.value.body["request_id"] == "req_test"
    assert exc.value.response.headers["retry-after"] == "2"
    # bytes already reached the client: the stream ends with a well-formed error event
    fake.script(AnthropicBehaviour(stream_error_after=3) if isinstance(fake, FakeAnthropic) else Behaviour(disconnect_after_chunks=2))
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as exc:
        async for event in await client.messages.create(model="m", max_tokens=64, messages=HELLO, stream=True):
            seen.append(event.type)
    assert seen[0] == "message_start" and exc.value.body["type"] == "error"
    assert exc.value.body["error"]["type"] == "api_error" and "message_stop" not in seen


async def test_invalid_requests_are_refused_in_anthropic_shape(gateway):
    client, _ = gateway  # the SDK insists on max_tokens, so a raw client sends the bad request
    url = str(client.base_url).rstrip("/") + "/v1/messages"
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.post(url, json={"model": "m", "messages": HELLO})
    assert r.status_code == 400
    assert r.json() == {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required (an integer >= 1)"},
                        "request_id": "req_test"}


# --- parsing what the SDK sends ------------------------------------------------------------------

def test_parse_what_the_sdk_sends(fake_anthropic, fake_openai):
    sdk = anthropic.Anthropic(base_url=fake_anthropic.base_url, api_key=FAKE_ANTHROPIC_API_KEY, max_retries=0, timeout=5)
    sdk.messages.create(
        # this SDK release no longer offers temperature/top_p as arguments; older ones and raw clients send them
        model="claude-x", max_tokens=100, extra_body={"temperature": 0.5, "top_p": 0.9}, stop_sequences=["END"], metadata={"user_id": "u1"},
        system=[{"type": "text", "text": "rule one"}, {"type": "text", "text": "rule two"}],
        tools=TOOLS, tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                                         {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}]},
            {"role": "assistant", "content": [{"type": "text", "text": "calling"},
                                              {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
                                              {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"},
                                         {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
                                          "content": [{"type": "text", "text": "no data"}]},
                                         {"type": "text", "text": "so?"}]},
        ])
    sent = fake_anthropic.requests[-1].json
    canonical = INGRESS.parse_request(sent)
    assert canonical == {
        "model": "claude-x", "max_tokens": 100, "stream": False, "temperature": 0.5, "top_p": 0.9, "stop": ["END"],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                                    "parameters": TOOLS[0]["input_schema"]}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "parallel_tool_calls": False,
        "user": "u1", "x_vendor": {},
        "x_names": {"user": "metadata.user_id", "stop": "stop_sequences",
                    "parallel_tool_calls": "tool_choice.disable_parallel_tool_use"},
        "x_paths": ["system", "messages[0]", "messages[1]", "messages[2]", "messages[2]", "messages[2]"],
        "messages": [
            {"role": "system", "content": "rule one\nrule two"},
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                                         {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}]},
            {"role": "assistant", "content": "calling", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
                {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "rain"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "no data", "is_error": True},
            {"role": "user", "content": "so?"},
        ],
    }
    # the canonical request is one an OpenAI server takes, and one Anthropic takes back
    r = httpx.post(fake_openai.base_url + "/chat/completions", json={**openai_body(canonical), "model": "fake", "tools": []},
                   headers={"authorization": f"Bearer {FAKE_OPENAI_API_KEY}"}, timeout=5)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "echo: so?"
    back = to_anthropic("claude-x", canonical, stream=False)
    assert back["messages"][1:] == sent["messages"][1:2] + [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "no data", "is_error": True},
        {"type": "text", "text": "so?"}]}]
    with anthropic.Anthropic(base_url=fake_anthropic.base_url, api_key=FAKE_ANTHROPIC_API_KEY, max_retries=0, timeout=5) as again:
        sampling = {k: back.pop(k) for k in ("temperature", "top_p")}
        assert again.messages.create(**back, extra_body=sampling).content[0].type == "text"
    assert fake_anthropic.requests[-1].json["temperature"] == 0.5


def test_stream_flag_is_parsed(fake_anthropic):
    sdk = anthropic.Anthropic(base_url=fake_anthropic.base_url, api_key=FAKE_ANTHROPIC_API_KEY, max_retries=0, timeout=5)
    with sdk.messages.stream(model="claude-x", max_tokens=10, messages=HELLO) as s:
        s.get_final_message()
    canonical = INGRESS.parse_request(fake_anthropic.requests[-1].json)
    assert canonical["stream"] is True and canonical["stream_options"] == {"include_usage": True}
    assert canonical["messages"] == [{"role": "user", "content": "hello world"}]


@pytest.mark.parametrize("patch,param", [
    ({"max_tokens": None}, "max_tokens"), ({"max_tokens": "5"}, "max_tokens"), ({"model": ""}, "model"),
    ({"messages": []}, "messages"), ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "server_tool_use"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]}, "messages[0].content[0].source"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
    ({"tool_choice": {"type": "tool"}}, "tool_choice"), ({"stream": "yes"}, "stream"),
])
def test_invalid_requests_name_the_field(patch, param):
    body = {"model": "m", "max_tokens": 5, "messages": HELLO, **patch}
    with pytest.raises(InvalidRequest) as exc:
        INGRESS.parse_request({k: v for k, v in body.items() if v is not None})
    assert exc.value.param == param and exc.value.status_code == 400


def test_system_turns_anywhere_become_system_messages():
    """Claude Code's default mode sends `system` turns inside `messages`: translated, never a 400."""
    body = {"model": "m", "max_tokens": 5, "system": "top", "messages": [
        {"role": "user", "content": "hi"}, {"role": "system", "content": [{"type": "text", "text": "note one"}]},
        {"role": "assistant", "content": "ok"}, {"role": "system", "content": "note two"}]}
    assert INGRESS.parse_request(body)["messages"] == [
        {"role": "system", "content": "top"}, {"role": "user", "content": "hi"}, {"role": "system", "content": "note one"},
        {"role": "assistant", "content": "ok"}, {"role": "system", "content": "note two"}]
    # an Anthropic target (on the translated path) gets them back as its top-level system
    assert to_anthropic("m", INGRESS.parse_request(body), stream=False)["system"] == [
        {"type": "text", "text": "top"}, {"type": "text", "text": "note one"}, {"type": "text", "text": "note two"}]


# --- rendering --------------------------------------------------------------------------------

def test_render_response():
    canonical = {"id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "up", "choices": [{
        "index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}], "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": [1, 2]}'}},
            {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "not json"}}]}}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35, "prompt_tokens_details": {"cached_tokens": 20}}}
    out = INGRESS.render_response(canonical, "client-model")
    assert out == {"id": "msg_abc", "type": "message", "role": "assistant", "model": "client-model", "stop_reason": "tool_use",
                   "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 20},
                   "content": [{"type": "text", "text": "hi"}, {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": [1, 2]}},
                               {"type": "tool_use", "id": "call_2", "name": "g", "input": {}}]}
    for finish, stop in (("length", "max_tokens"), ("content_filter", "refusal"), (None, "end_turn")):
        canonical["choices"][0]["finish_reason"] = finish
        assert INGRESS.render_response(canonical, "m")["stop_reason"] == stop


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


MIXED = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Let me "}), chunk({"content": "check."}),
    chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
    chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]}),
    chunk({}, "tool_calls"),
    {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up", "choices": [],
     "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}},
]


def events_of(raw: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    return [(e.event, json.loads(e.data)) for e in SSEParser().feed(raw)]


def test_encoder_event_sequence():
    enc = INGRESS.stream_encoder("client-model", {"stream": True})
    events = events_of(b"".join(enc.chunk(c) for c in MIXED) + enc.end() + enc.end())
    assert all(kind == data["type"] for kind, data in events)
    assert [(k, d.get("index")) for k, d in events] == [
        ("message_start", None), ("content_block_start", 0), ("content_block_delta", 0), ("content_block_delta", 0),
        ("content_block_stop", 0), ("content_block_start", 1), ("content_block_delta", 1), ("content_block_delta", 1),
        ("content_block_stop", 1), ("content_block_start", 2), ("content_block_delta", 2), ("content_block_stop", 2),
        ("message_delta", None), ("message_stop", None)]
    assert events[0][1]["message"]["id"] == "msg_1" and events[0][1]["message"]["model"] == "client-model"
    assert events[0][1]["message"]["usage"] == {"input_tokens": 0, "output_tokens": 0}  # not known yet
    assert events[5][1]["content_block"] == {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}}
    assert events[-2][1] == {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                             "usage": {"input_tokens": 12, "output_tokens": 7}}


def test_encoder_ends_and_fails_well_formed():
    known = INGRESS.stream_encoder("m", {})
    start = events_of(known.chunk(chunk({"role": "assistant"}, usage={"prompt_tokens": 4, "completion_tokens": 0})))[0][1]
    assert start["message"]["usage"] == {"input_tokens": 4, "output_tokens": 0}
    empty = INGRESS.stream_encoder("m", {})
    assert [k for k, _ in events_of(empty.end())] == ["message_start", "message_delta", "message_stop"]
    enc = INGRESS.stream_encoder("m", {})
    raw = enc.chunk(chunk({"role": "assistant", "content": "par"})) + enc.error(UpstreamBadResponse("upstream t cut the stream"), "req_9")
    assert enc.end() == b"" and enc.chunk(chunk({"content": "more"})) == b""
    events = events_of(raw)
    assert [k for k, _ in events] == ["message_start", "content_block_start", "content_block_delta", "error"]
    assert events[-1][1] == {"type": "error", "error": {"type": "api_error", "message": "upstream t cut the stream"}, "request_id": "req_9"}


async def serve_once(status: int, body: bytes, content_type: str) -> TestServer:
    async def handler(_: web.Request) -> web.Response:
        return web.Response(status=status, body=body, headers={"content-type": content_type})
    app = web.Application()
    app.router.add_post("/v1/messages", handler)
    server = TestServer(app)
    await server.start_server()
    return server


async def test_sdk_parses_encoder_output_and_rendered_errors():
    enc = INGRESS.stream_encoder("client-model", {})
    server = await serve_once(200, b"".join(enc.chunk(c) for c in MIXED) + enc.end(), INGRESS.stream_media_type)
    client = anthropic.AsyncAnthropic(base_url=str(server.make_url("")).rstrip("/"), api_key="k", max_retries=0, timeout=5)
    try:
        async with client.messages.stream(model="client-model", max_tokens=9, messages=HELLO) as s:
            final = await s.get_final_message()
        assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
        assert final.content[0].text == "Let me check." and final.content[1].input == {"city": "Oslo"}
        assert final.content[2].input == {"city": "Rome"} and final.stop_reason == "tool_use"
        assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 7)
    finally:
        await client.close()
        await server.close()
    err = UpstreamRateLimited("upstream t is rate limiting")
    server = await serve_once(429, render_error(err, "req_1", "anthropic"), "application/json")
    client = anthropic.AsyncAnthropic(base_url=str(server.make_url("")).rstrip("/"), api_key="k", max_retries=0, timeout=5)
    try:
        with pytest.raises(anthropic.RateLimitError) as exc:
            await client.messages.create(model="m", max_tokens=9, messages=HELLO)
        assert exc.value.body["error"] == {"type": "rate_limit_error", "message": "upstream t is rate limiting"}
    finally:
        await client.close()
        await server.close()
