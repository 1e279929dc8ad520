"""The Ollama adapter (native /api/chat) against the fake Ollama over real HTTP, streaming on and off."""

from __future__ import annotations

import httpx
import orjson
import pytest

from aigw_gateway.errors import (
    InvalidRequest,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
)
from aigw_gateway.providers.ollama import OllamaAdapter, OllamaStreamTranslator, to_ollama
from tests.fakes.more_fixtures import (  # noqa: F401
    fake_ollama,
    feed_in_splits,
    merge_chunks,
    provider_config,
    send_stream,
    send_unary,
)
from tests.fakes.ollama_provider import FakeOllama, OllamaBehaviour
from tests.fakes.openai_provider import Behaviour

ADAPTER = OllamaAdapter(clock=lambda: 1_700_000_000.0)
MSG = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello fake world"}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}}]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


def provider(fake: FakeOllama):
    return provider_config("ollama", fake.url)


# --- request building --------------------------------------------------------------------------

def test_request_url_headers_and_body():
    cfg = provider_config("ollama", "http://127.0.0.1:11434")
    up = ADAPTER.chat_request(cfg, None, "llama3.2", {"model": "alias", "messages": MSG, "max_tokens": 7,
                                                      "temperature": 0.2, "top_p": 0.9, "stop": "END", "seed": 3}, False)
    assert (up.method, up.url) == ("POST", "http://127.0.0.1:11434/api/chat")
    assert "authorization" not in up.headers and up.headers["content-type"] == "application/json"
    body = orjson.loads(up.content)
    assert body["model"] == "llama3.2" and body["stream"] is False  # explicit: Ollama streams by default
    assert body["options"] == {"num_predict": 7, "temperature": 0.2, "top_p": 0.9, "seed": 3, "stop": ["END"]}
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello fake world"}]

    up = ADAPTER.chat_request(provider_config("ollama", "https://ollama.example/v1/"), "proxy-key", "m", {"messages": MSG}, True)
    assert up.url == "https://ollama.example/api/chat"
    assert up.headers["authorization"] == "Bearer proxy-key"
    assert up.headers["accept"] == "application/x-ndjson"
    assert orjson.loads(up.content)["stream"] is True and "options" not in orjson.loads(up.content)


def test_messages_images_tools_and_formats():
    body = to_ollama("m", {
        "messages": [
            {"role": "developer", "content": "rules"},
            {"role": "user", "content": [{"type": "text", "text": "what is"}, {"type": "text", "text": "this?"},
                                         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "tools": TOOLS, "max_completion_tokens": 9, "response_format": {"type": "json_object"},
    }, False)
    user, assistant, tool = body["messages"][1:]
    assert body["messages"][0] == {"role": "system", "content": "rules"}
    assert user == {"role": "user", "content": "what is\nthis?", "images": [PNG]}
    assert assistant["tool_calls"] == [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    assert tool == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}
    assert body["tools"] == TOOLS and body["options"] == {"num_predict": 9} and body["format"] == "json"

    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = to_ollama("m", {"messages": MSG, "tools": TOOLS, "tool_choice": "none",
                           "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}, False)
    assert "tools" not in body and body["format"] == schema


def test_requests_ollama_cannot_take_are_rejected_with_the_field():
    with pytest.raises(InvalidRequest) as err:
        to_ollama("m", {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}, False)
    assert err.value.param == "messages[0].content[0]"
    with pytest.raises(InvalidRequest) as err:
        to_ollama("m", {"messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "function": {"name": "f", "arguments": "not json"}}]}]}, False)
    assert err.value.param == "messages[0].tool_calls[0].function.arguments"


def test_adapter_body_matches_what_the_official_client_sends(fake_ollama):
    """The same conversation through `ollama.Client` and through the adapter: the same wire body."""
    ollama = pytest.importorskip("ollama")
    import base64

    messages = [
        {"role": "user", "content": "hi", "images": [ollama.Image(value=base64.b64decode(PNG))]},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "content": "ok", "tool_name": "get_weather"},
    ]
    ollama.Client(host=fake_ollama.url, timeout=10).chat(
        model="fake", messages=messages, tools=TOOLS, options={"num_predict": 5, "stop": ["x"]})
    official = fake_ollama.last_request.json
    ours = to_ollama("fake", {"messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"},
                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ], "tools": TOOLS, "max_tokens": 5, "stop": ["x"]}, False)
    # the client leaves out an empty content, which Ollama reads as ""
    assert ours["messages"] == [{**m, "content": m.get("content", "")} for m in official["messages"]]
    assert ours["options"] == official["options"] and ours["stream"] == official["stream"]
    assert [t["function"]["name"] for t in ours["tools"]] == [t["function"]["name"] for t in official["tools"]]


# --- over HTTP ---------------------------------------------------------------------------------

async def test_chat(fake_ollama):
    res = await send_unary(ADAPTER, provider(fake_ollama), None, "fake", {"messages": MSG, "max_tokens": 50})
    assert res["object"] == "chat.completion" and res["created"] == 1_700_000_000 and res["model"] == "fake"
    assert res["choices"][0]["message"] == {"role": "assistant", "content": "echo: hello fake world"}
    assert res["choices"][0]["finish_reason"] == "stop"
    assert res["usage"] == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
    sent = fake_ollama.last_request
    assert sent.path == "/api/chat" and sent.json["stream"] is False and sent.json["options"] == {"num_predict": 50}


async def test_chat_hits_max_tokens(fake_ollama):
    res = await send_unary(ADAPTER, provider(fake_ollama), None, "fake", {"messages": MSG, "max_tokens": 2})
    assert res["choices"][0]["message"]["content"] == "echo: hello"
    assert res["choices"][0]["finish_reason"] == "length"
    assert res["usage"]["completion_tokens"] == 2


async def test_tool_call_round_trip(fake_ollama):
    res = await send_unary(ADAPTER, provider(fake_ollama), None, "fake", {"messages": MSG, "tools": TOOLS})
    (call,) = res["choices"][0]["message"]["tool_calls"]
    assert res["choices"][0]["finish_reason"] == "tool_calls" and res["choices"][0]["message"]["content"] is None
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather" and orjson.loads(call["function"]["arguments"]) == {"arg": "value"}

    follow_up = MSG + [res["choices"][0]["message"], {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]
    res = await send_unary(ADAPTER, provider(fake_ollama), None, "fake", {"messages": follow_up, "tools": TOOLS})
    assert res["choices"][0]["message"]["content"] == "echo: sunny"
    sent = fake_ollama.last_request.json["messages"]
    assert sent[2]["tool_calls"][0]["function"]["arguments"] == {"arg": "value"}
    assert sent[3] == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}


async def test_stream(fake_ollama):
    fake_ollama.script(Behaviour(chunks=5))
    chunks, raw = await send_stream(ADAPTER, provider(fake_ollama), None, "fake", {"messages": MSG})
    merged = merge_chunks(chunks)
    assert merged == {"role": "assistant", "content": "echo: hello fake world", "tool_calls": [],
                      "finish_reason": "stop", "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "usage" in chunks[-1] and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks[:-1])
    assert len({c["id"] for c in chunks}) == 1
    assert fake_ollama.last_request.json["stream"] is True
    for seed in range(5):  # the same bytes in random small pieces translate the same
        split = feed_in_splits(OllamaStreamTranslator("t", "fake", 0), raw, seed)
        assert merge_chunks(split) == merged


async def test_stream_tool_calls(fake_ollama):
    chunks, raw = await send_stream(ADAPTER, provider(fake_ollama), None, "fake", {"messages": MSG, "tools": TOOLS})
    merged = merge_chunks(chunks)
    assert merged["finish_reason"] == "tool_calls" and merged["usage"]["completion_tokens"] == 2
    (call,) = merged["tool_calls"]
    assert call["name"] == "get_weather" and orjson.loads(call["arguments"]) == {"arg": "value"}
    assert merge_chunks(feed_in_splits(OllamaStreamTranslator("t", "fake", 0), raw, 1, 3))["tool_calls"][0]["arguments"] == call["arguments"]


# --- failures ----------------------------------------------------------------------------------

async def test_unknown_model_is_a_configuration_error(fake_ollama):
    with pytest.raises(UpstreamError) as err:
        await send_unary(ADAPTER, provider(fake_ollama), None, "no-such-model", {"messages": MSG})
    assert err.value.status_code == 502 and "HTTP 404" in err.value.message
    assert err.value.retry_same_target is False


@pytest.mark.parametrize("stream", [False, True])
async def test_status_errors(fake_ollama, stream):
    send = send_stream if stream else send_unary
    fake_ollama.script(Behaviour(status=429, headers={"retry-after": "3"}), Behaviour(status=500, error_message="runner crashed"),
                       Behaviour(status=400, error_message="invalid options"))
    with pytest.raises(UpstreamRateLimited) as err:
        await send(ADAPTER, provider(fake_ollama), None, "fake", {"messages": MSG})
    assert err.value.headers == {"retry-after": "3"}
    with pytest.raises(UpstreamError) as err:
        await send(ADAPTER, provider(fake_ollama), None, "fake", {"messages": MSG})
    assert err.value.retryable and "runner crashed" in err.value.message
    with pytest.raises(UpstreamRejected) as err:
        await send(ADAPTER, provider(fake_ollama), None, "fake", {"messages": MSG})
    assert not err.value.retryable and "invalid options" in err.value.message


async def test_error_line_mid_stream_is_a_retryable_upstream_error(fake_ollama):
    fake_ollama.script(OllamaBehaviour(stream_error="llama runner process has terminated", error_after=2))
    with pytest.raises(UpstreamError) as err:
        await send_stream(ADAPTER, provider(fake_ollama), None, "fake", {"messages": MSG})
    assert err.value.retryable and "llama runner process has terminated" in err.value.message


@pytest.mark.parametrize("stream", [False, True])
async def test_garbage_is_a_bad_response(fake_ollama, stream):
    fake_ollama.script(Behaviour(garbage=True))
    with pytest.raises(UpstreamBadResponse):
        await (send_stream if stream else send_unary)(ADAPTER, provider(fake_ollama), None, "fake", {"messages": MSG})


async def test_stream_cut_before_the_done_line_never_ends_quietly(fake_ollama):
    fake_ollama.script(Behaviour(disconnect_after_chunks=2))
    with pytest.raises((UpstreamBadResponse, UpstreamError)):
        await send_stream(ADAPTER, provider(fake_ollama), None, "fake", {"messages": MSG})
    translator = OllamaStreamTranslator("t", "fake", 0)
    translator.feed(b'{"model":"fake","message":{"role":"assistant","content":"a"},"done":false}\n')
    with pytest.raises(UpstreamBadResponse, match="final"):
        translator.finish()


async def test_fake_stalls_before_the_first_byte(fake_ollama):
    fake_ollama.script(Behaviour(stall_seconds=5))
    up = ADAPTER.chat_request(provider(fake_ollama), None, "fake", {"messages": MSG}, True)
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.5)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.request(up.method, up.url, headers=up.headers, content=up.content)


async def test_key_is_sent_as_bearer_when_configured():
    with FakeOllama(api_key="behind-a-proxy") as fake:
        with pytest.raises(UpstreamError, match="credentials"):
            await send_unary(ADAPTER, provider(fake), None, "fake", {"messages": MSG})
        res = await send_unary(ADAPTER, provider(fake), "behind-a-proxy", "fake", {"messages": MSG})
        assert res["choices"][0]["message"]["content"] == "echo: hello fake world"


# --- the fake is faithful: the official client against it --------------------------------------

def test_official_client_against_the_fake(fake_ollama):
    ollama = pytest.importorskip("ollama")
    client = ollama.Client(host=fake_ollama.url, timeout=10)
    res = client.chat(model="fake", messages=[{"role": "user", "content": "hi there"}], options={"num_predict": 50})
    assert res.message.content == "echo: hi there" and res.done and res.done_reason == "stop"
    assert (res.prompt_eval_count, res.eval_count) == (2, 3)
    parts = list(client.chat(model="fake", messages=[{"role": "user", "content": "hi there"}], stream=True))
    assert "".join(p.message.content for p in parts) == "echo: hi there" and parts[-1].done
    res = client.chat(model="fake", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS)
    assert res.message.tool_calls[0].function.name == "get_weather"
    assert res.message.tool_calls[0].function.arguments == {"arg": "value"}
    assert [m.model for m in client.list().models] == ["fake", "llama3.2:latest"]
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="missing", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 404 and "not found" in err.value.error
    fake_ollama.script(OllamaBehaviour(stream_error="boom", error_after=1))
    with pytest.raises(ollama.ResponseError, match="boom"):
        list(client.chat(model="fake", messages=[{"role": "user", "content": "x"}], stream=True))


def test_fake_is_strict_where_ollama_is(fake_ollama):
    url = fake_ollama.url + "/api/chat"
    r = httpx.post(url, json={"model": "fake", "stream": False, "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]})
    assert r.status_code == 400 and "cannot unmarshal array" in r.json()["error"]
    r = httpx.post(url, json={"model": "fake", "stream": False, "messages": [
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}]})
    assert r.status_code == 400 and "cannot unmarshal string" in r.json()["error"]
    r = httpx.post(url, json={"model": "fake", "messages": [{"role": "user", "content": "x"}]})
    assert r.headers["content-type"].startswith("application/x-ndjson")  # no "stream": streams
