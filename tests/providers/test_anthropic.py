"""The Anthropic adapter against the fake Anthropic server over real HTTP, and the fake against
the official `anthropic` SDK (so the fake is known to speak the real wire format)."""

from __future__ import annotations

import json
import random
from typing import Any

import anthropic
import httpx
import pytest

from aigw_config.config import ProviderConfig
from aigw_gateway.errors import (
    GatewayError, InvalidRequest, UpstreamBadResponse, UpstreamError, UpstreamRateLimited, UpstreamRejected,
)
from aigw_gateway.providers.anthropic import AnthropicAdapter, messages_url, to_anthropic
from tests.fakes.anthropic_fixtures import FAKE_ANTHROPIC_API_KEY, fake_anthropic  # noqa: F401
from tests.fakes.anthropic_provider import AnthropicBehaviour, FakeAnthropic, parse_directives
from tests.fakes.openai_provider import Behaviour

KEY = FAKE_ANTHROPIC_API_KEY
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
         {"type": "function", "function": {"name": "other_tool", "parameters": {"type": "object", "properties": {}}}}]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
ADAPTER = AnthropicAdapter(clock=lambda: 1_700_000_000)


def sdk(fake: FakeAnthropic, key: str = KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.base_url, api_key=key, max_retries=0, timeout=5)


def provider(fake: FakeAnthropic) -> ProviderConfig:
    return ProviderConfig(name="anthropic-test", provider="anthropic", baseURL=fake.base_url, has_api_key=True)


def call(fake: FakeAnthropic, request: dict[str, Any], stream: bool, *, key: str = KEY, seed: int | None = 0) -> Any:
    """The adapter's request over real HTTP; the canonical response, or the list of chunks
    (fed to the translator in random small splits). Non-2xx answers raise through error_for."""
    up = ADAPTER.chat_request(provider(fake), key, "claude-fake", request, stream)
    with httpx.Client(timeout=5) as client:
        with client.stream(up.method, up.url, headers=up.headers, content=up.content) as resp:
            if resp.status_code >= 400:
                raise ADAPTER.error_for(resp.status_code, resp.read(), dict(resp.headers), "anthropic-test")
            if not stream:
                return ADAPTER.chat_response(resp.read(), "anthropic-test", "claude-fake")
            translator = ADAPTER.stream_translator("anthropic-test", "claude-fake")
            rng = random.Random(seed)
            chunks: list[dict[str, Any]] = []
            try:
                for data in resp.iter_raw():
                    while data:
                        cut = rng.randint(1, 7) if seed is not None else len(data)
                        chunks += translator.feed(data[:cut])
                        data = data[cut:]
            except httpx.TransportError:
                pass  # a dropped connection: finish() must notice the stream is incomplete
            return chunks + translator.finish()


def assemble(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """A canonical chunk stream folded into the non-streamed response's shape."""
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text, calls, finish, usage = "", {}, None, None
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        usage = chunk.get("usage") or usage
        for choice in chunk["choices"]:
            delta = choice["delta"]
            text += delta.get("content") or ""
            for tc in delta.get("tool_calls") or ():
                call_ = calls.setdefault(tc["index"], {"id": None, "type": "function", "function": {"name": None, "arguments": ""}})
                call_["id"] = tc.get("id") or call_["id"]
                call_["function"]["name"] = tc.get("function", {}).get("name") or call_["function"]["name"]
                call_["function"]["arguments"] += tc.get("function", {}).get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return {"message": message, "finish_reason": finish, "usage": usage}


def answer(fake: FakeAnthropic, request: dict[str, Any], stream: bool) -> dict[str, Any]:
    result = call(fake, request, stream)
    if stream:
        return assemble(result)
    assert result["object"] == "chat.completion" and result["created"] == 1_700_000_000
    choice = result["choices"][0]
    return {"message": choice["message"], "finish_reason": choice["finish_reason"], "usage": result["usage"]}


# --- the fake, as the anthropic SDK sees it ---------------------------------------------------

def test_fake_answers_the_sdk(fake_anthropic):
    r = sdk(fake_anthropic).messages.create(model="claude-fake", max_tokens=64, system="be brief",
                                            messages=[{"role": "user", "content": "hello fake world"}])
    assert r.id.startswith("msg_") and r.type == "message" and r.role == "assistant" and r.model == "claude-fake"
    assert [b.type for b in r.content] == ["text"] and r.content[0].text == "echo: hello fake world"
    assert (r.stop_reason, r.usage.input_tokens, r.usage.output_tokens) == ("end_turn", 5, 4)
    body = fake_anthropic.requests[0].json
    assert body["max_tokens"] == 64 and body["system"] == "be brief"


def test_fake_tool_use_round_trip_with_the_sdk(fake_anthropic):
    client = sdk(fake_anthropic)
    tools = [{"name": "get_weather", "description": "w", "input_schema": {"type": "object", "properties": {}}}]
    first = client.messages.create(model="claude-fake", max_tokens=64, tools=tools,
                                   messages=[{"role": "user", "content": "weather?"}])
    assert first.stop_reason == "tool_use"
    (use,) = first.content
    assert (use.type, use.name, use.input) == ("tool_use", "get_weather", {"arg": "value"})
    second = client.messages.create(model="claude-fake", max_tokens=64, tools=tools, messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
    ])
    assert second.content[0].text == "echo: sunny" and second.stop_reason == "end_turn"


@pytest.mark.parametrize("preamble", [None, "let me look"])
def test_fake_streams_to_the_sdk(fake_anthropic, preamble):
    client = sdk(fake_anthropic)
    with client.messages.stream(model="claude-fake", max_tokens=64, messages=[{"role": "user", "content": "hi there"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == final.content[0].text == "echo: hi there"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 3
    fake_anthropic.script(AnthropicBehaviour(tool_preamble=preamble))
    tools = [{"name": "lookup", "input_schema": {"type": "object"}}]
    with client.messages.stream(model="claude-fake", max_tokens=64, tools=tools, messages=[{"role": "user", "content": "x"}]) as s:
        final = s.get_final_message()
    assert [b.type for b in final.content] == (["text"] if preamble else []) + ["tool_use"]
    assert final.content[-1].input == {"arg": "value"} and final.stop_reason == "tool_use"


def test_fake_errors_reach_the_sdk_in_anthropic_shape(fake_anthropic):
    with pytest.raises(anthropic.AuthenticationError) as exc:
        sdk(fake_anthropic, key="wrong").messages.create(model="claude-fake", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert exc.value.body["error"]["type"] == "authentication_error"
    fake_anthropic.script(Behaviour(status=529), Behaviour(status=429, headers={"retry-after": "3"}))
    with pytest.raises(anthropic.OverloadedError) as exc:
        sdk(fake_anthropic).messages.create(model="claude-fake", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert exc.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    with pytest.raises(anthropic.RateLimitError) as exc:
        sdk(fake_anthropic).messages.create(model="claude-fake", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert exc.value.response.headers["retry-after"] == "3"
    with pytest.raises(anthropic.APIStatusError) as exc:
        with sdk(fake_anthropic).messages.stream(model="claude-fake~error_after=3", max_tokens=8,
                                                 messages=[{"role": "user", "content": "x"}]) as s:
            s.get_final_message()
    assert exc.value.body["error"]["type"] == "overloaded_error"


def test_fake_refuses_what_the_real_api_refuses(fake_anthropic):
    def post(body: dict[str, Any], version: str | None = "2023-06-01") -> httpx.Response:
        headers = {"x-api-key": KEY, **({"anthropic-version": version} if version else {})}
        return httpx.post(fake_anthropic.base_url + "/v1/messages", json=body, headers=headers, timeout=5)

    ok = {"model": "claude-fake", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    assert post(ok).status_code == 200
    assert "anthropic-version" in post(ok, version=None).json()["error"]["message"]
    cases = {
        "max_tokens: Field required": {**ok, "max_tokens": None},
        'Unexpected role "system"': {**ok, "messages": [{"role": "system", "content": "s"}, *ok["messages"]]},
        "non-whitespace text": {**ok, "messages": [{"role": "user", "content": [{"type": "text", "text": " "}]}]},
        "temperature": {**ok, "temperature": 1.5},
        "without `tool_result` blocks immediately after": {**ok, "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "a", "input": {}},
                                              {"type": "tool_use", "id": "t2", "name": "a", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "content": "r"}]}]},
    }
    for message, body in cases.items():
        resp = post(body)
        assert resp.status_code == 400, message
        assert resp.json()["type"] == "error" and message in resp.json()["error"]["message"]


def test_directives_parse():
    base, b = parse_directives("claude-fake~status=529~error_after=2~error_type=api_error~chunks=5")
    assert (base, b.status, b.stream_error_after, b.stream_error_type, b.chunks) == ("claude-fake", 529, 2, "api_error", 5)
    with pytest.raises(ValueError):
        parse_directives("claude-fake~bogus=1")


# --- request translation ------------------------------------------------------------------------

def test_request_translation():
    req = {
        "model": "ignored", "temperature": 1.7, "top_p": 0.9, "stop": "END", "max_completion_tokens": 100,
        "tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "other_tool"}},
        "parallel_tool_calls": False, "user": "u-1",
        "messages": [
            {"role": "system", "content": "one"},
            {"role": "developer", "content": [{"type": "text", "text": "two"}]},
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                                         {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}]},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "other_tool", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "ok"}]},
            {"role": "user", "content": "and now?"},
        ],
    }
    body = to_anthropic("claude-x", req, stream=True)
    assert body["model"] == "claude-x" and body["max_tokens"] == 100 and body["stream"] is True
    assert body["system"] == [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    assert (body["temperature"], body["top_p"], body["stop_sequences"]) == (1.0, 0.9, ["END"])
    assert body["tools"][0] == {"name": "get_weather", "description": "Weather for a city",
                                "input_schema": TOOLS[0]["function"]["parameters"]}
    assert body["tool_choice"] == {"type": "tool", "name": "other_tool", "disable_parallel_tool_use": True}
    assert body["metadata"] == {"user_id": "u-1"}
    user, assistant, results = body["messages"]
    assert user["content"][1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    assert user["content"][2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}
    assert assistant["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "call_2", "name": "other_tool", "input": {}}]
    assert results == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "rain"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "ok"},
        {"type": "text", "text": "and now?"}]}


@pytest.mark.parametrize("choice,expected", [
    ("auto", {"type": "auto"}), ("required", {"type": "any"}), ("none", {"type": "none"}), (None, None)])
def test_tool_choice_and_defaults(choice, expected):
    req = {"messages": [{"role": "user", "content": "x"}], "tools": TOOLS, **({"tool_choice": choice} if choice else {})}
    body = to_anthropic("m", req, stream=False)
    assert body.get("tool_choice") == expected and body["max_tokens"] == 4096 and "stream" not in body
    assert "tool_choice" not in to_anthropic("m", {**req, "tools": []}, stream=False)


def test_request_envelope_and_invalid_input():
    cfg = ProviderConfig(name="a", provider="anthropic", baseURL="https://api.anthropic.com/")
    up = ADAPTER.chat_request(cfg, "sk-ant", "claude-x", {"messages": [{"role": "user", "content": "x"}]}, stream=True)
    assert (up.method, up.url) == ("POST", "https://api.anthropic.com/v1/messages")
    assert up.headers["x-api-key"] == "sk-ant" and up.headers["anthropic-version"] == "2023-06-01"
    assert up.headers["accept"] == "text/event-stream" and json.loads(up.content)["stream"] is True
    assert messages_url("http://h:1/v1") == "http://h:1/v1/messages"
    bad_args = {"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1"}}]}]}
    with pytest.raises(InvalidRequest) as exc:
        to_anthropic("m", bad_args, stream=False)
    assert exc.value.param == "messages[0].tool_calls[0].function.arguments"
    with pytest.raises(InvalidRequest) as exc:
        to_anthropic("m", {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, stream=False)
    assert exc.value.param == "messages[0].content[0]"


# --- over HTTP, streaming on and off -------------------------------------------------------------

CONVERSATION = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "weather in Oslo and Rome"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]},
    {"role": "tool", "tool_call_id": "call_a", "content": "rain"},
    {"role": "tool", "tool_call_id": "call_b", "content": "sun"},
]


@pytest.mark.parametrize("stream", [False, True])
def test_text_over_http(fake_anthropic, stream):
    got = answer(fake_anthropic, {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hello world"}]}, stream)
    assert got["message"] == {"role": "assistant", "content": "echo: hello world"}
    assert got["finish_reason"] == "stop"
    assert got["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    sent = fake_anthropic.requests[-1]
    assert sent.headers["x-api-key"] == KEY and sent.json["system"] == "s" and sent.json["max_tokens"] == 4096


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_over_http(fake_anthropic, stream):
    fake_anthropic.script(AnthropicBehaviour(tool_preamble="checking"))
    got = answer(fake_anthropic, {"messages": [{"role": "user", "content": "weather?"}], "tools": TOOLS,
                                  "tool_choice": {"type": "function", "function": {"name": "other_tool"}}}, stream)
    assert got["finish_reason"] == "tool_calls" and got["message"]["content"] == "checking"
    (tc,) = got["message"]["tool_calls"]
    assert tc["id"].startswith("toolu_") and tc["function"]["name"] == "other_tool"
    assert json.loads(tc["function"]["arguments"]) == {"arg": "value"}
    # the results of parallel calls go back as one user turn, which the fake insists on
    follow = answer(fake_anthropic, {"messages": CONVERSATION, "tools": TOOLS}, stream)
    assert follow["message"]["content"] == "echo: rain sun" and follow["finish_reason"] == "stop"


@pytest.mark.parametrize("stream", [False, True])
def test_images_stops_length_and_cache_usage(fake_anthropic, stream):
    image = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}]}
    assert answer(fake_anthropic, image, stream)["message"]["content"] == "echo: what is this"
    stopped = answer(fake_anthropic, {"messages": [{"role": "user", "content": "a b STOP c"}], "stop": ["STOP"]}, stream)
    assert (stopped["message"]["content"], stopped["finish_reason"]) == ("echo: a b ", "stop")
    cut = answer(fake_anthropic, {"messages": [{"role": "user", "content": "a b c d"}], "max_tokens": 2}, stream)
    assert (cut["message"]["content"], cut["finish_reason"]) == ("echo: a", "length")
    fake_anthropic.script(AnthropicBehaviour(cache_read_input_tokens=10, cache_creation_input_tokens=5))
    cached = answer(fake_anthropic, {"messages": [{"role": "user", "content": "x"}]}, stream)
    assert cached["usage"] == {"prompt_tokens": 16, "completion_tokens": 2, "total_tokens": 18,
                               "prompt_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 5}}


def test_stream_survives_any_split(fake_anthropic):
    fake_anthropic.set_default(AnthropicBehaviour(content="héllo wörld ✓ 日本", chunks=7, tool_preamble="ü"))
    req = {"messages": [{"role": "user", "content": "x"}]}
    whole = assemble(call(fake_anthropic, req, True, seed=None))
    for seed in range(5):
        assert assemble(call(fake_anthropic, req, True, seed=seed)) == whole
    assert whole["message"]["content"] == "héllo wörld ✓ 日本"
    tools = assemble(call(fake_anthropic, {**req, "tools": TOOLS}, True, seed=3))
    assert tools["message"]["content"] == "ü" and len(tools["message"]["tool_calls"]) == 1


# --- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True])
def test_status_errors_map_once(fake_anthropic, stream):
    req = {"messages": [{"role": "user", "content": "x"}]}
    fake_anthropic.script(Behaviour(status=429, headers={"retry-after": "7"}), Behaviour(status=529), Behaviour(status=500))
    with pytest.raises(UpstreamRateLimited) as exc:
        call(fake_anthropic, req, stream)
    assert exc.value.headers == {"retry-after": "7"} and exc.value.retryable
    for _ in range(2):
        with pytest.raises(UpstreamError) as exc:
            call(fake_anthropic, req, stream)
        assert exc.value.status_code == 502 and exc.value.retryable
    assert "Overloaded" in str(call_error(fake_anthropic, req, stream, Behaviour(status=529)))
    with pytest.raises(UpstreamRejected) as exc:  # the client's fault: relayed with Anthropic's reason
        call(fake_anthropic, {"messages": [{"role": "system", "content": "only a system prompt"}]}, stream)
    assert exc.value.status_code == 400 and not exc.value.retryable and "messages: Field required" in exc.value.message
    with pytest.raises(UpstreamError) as exc:  # our credential refused: never the client's 401
        call(fake_anthropic, req, stream, key="wrong")
    assert exc.value.status_code == 502


def call_error(fake: FakeAnthropic, req: dict[str, Any], stream: bool, behaviour: Behaviour) -> GatewayError:
    fake.script(behaviour)
    with pytest.raises(GatewayError) as exc:
        call(fake, req, stream)
    return exc.value


def test_stream_failures(fake_anthropic):
    req = {"messages": [{"role": "user", "content": "x"}]}
    overloaded = call_error(fake_anthropic, req, True, AnthropicBehaviour(stream_error_after=4))
    assert isinstance(overloaded, UpstreamError) and overloaded.retryable and "Overloaded" in overloaded.message
    invalid = call_error(fake_anthropic, req, True, AnthropicBehaviour(stream_error_after=2, stream_error_type="invalid_request_error"))
    assert isinstance(invalid, UpstreamRejected)
    for behaviour in (Behaviour(disconnect_after_chunks=5), Behaviour(garbage=True), Behaviour(body="data: {}\n\n")):
        assert isinstance(call_error(fake_anthropic, req, True, behaviour), UpstreamBadResponse)
    for behaviour in (Behaviour(garbage=True), Behaviour(body={"type": "error_ish"})):
        assert isinstance(call_error(fake_anthropic, req, False, behaviour), UpstreamBadResponse)


def test_translator_ignores_pings_thinking_and_unknown_events():
    events = [
        ("message_start", {"message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 9, "output_tokens": 1}}}),
        ("ping", {}),
        ("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
        ("content_block_stop", {"index": 0}),
        ("content_block_start", {"index": 1, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"index": 1, "delta": {"type": "text_delta", "text": "hi"}}),
        ("some_future_event", {}),
        ("message_delta", {"delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 4, "input_tokens": 11}}),
        ("message_stop", {}),
    ]
    raw = b"".join(f"event: {k}\ndata: {json.dumps({'type': k, **v})}\n\n".encode() for k, v in events)
    t = ADAPTER.stream_translator("t", "fallback-model")
    chunks = t.feed(raw) + t.finish()
    assert [c["choices"][0]["delta"] for c in chunks] == [{"role": "assistant", "content": ""}, {"content": "hi"}, {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length" and chunks[-1]["model"] == "claude-x"
    assert chunks[-1]["usage"] == {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}
    early = ADAPTER.stream_translator("t", "m")
    with pytest.raises(UpstreamBadResponse):
        early.feed(b'event: content_block_start\ndata: {"type":"content_block_start","index":0}\n\n')
