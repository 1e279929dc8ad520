"""Tests of the fake OpenAI provider, driven by the official ``openai`` SDK."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import openai
import pytest

from tests.fakes.fixtures import FAKE_OPENAI_API_KEY, fake_openai, fake_openai_factory  # noqa: F401
from tests.fakes.openai_provider import Behaviour, FakeOpenAI, parse_model_directives, split_text

KEY = FAKE_OPENAI_API_KEY
MSG = [{"role": "user", "content": "hello fake world"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {"type": "function", "function": {"name": "other_tool", "parameters": {"type": "object", "properties": {}}}},
]


def sync_client(fake: FakeOpenAI, key: str = KEY, timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key=key, max_retries=0, timeout=timeout)


def async_client(fake: FakeOpenAI, key: str = KEY, timeout: float = 5.0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.base_url, api_key=key, max_retries=0, timeout=timeout)


# --------------------------------------------------------------------------- #
# unit helpers
# --------------------------------------------------------------------------- #
def test_parse_model_directives():
    base, b = parse_model_directives("fake~chunks=20~chunk_delay_ms=50~status=500~garbage=1~retry_after=2")
    assert base == "fake"
    assert (b.chunks, b.chunk_delay_ms, b.status, b.garbage) == (20, 50.0, 500, True)
    assert b.headers == {"retry-after": "2"}
    _, b = parse_model_directives("fake~stall=1.5~stall_after=2~disconnect_after=3")
    assert (b.stall_seconds, b.stall_after_chunks, b.disconnect_after_chunks) == (1.5, 2, 3)
    with pytest.raises(ValueError, match="unknown fake model directive"):
        parse_model_directives("fake~bogus=1")
    with pytest.raises(ValueError, match="bad value"):
        parse_model_directives("fake~status=abc")


def test_split_text_is_exact():
    for text in ("", "ab", "echo: hello fake world"):
        for n in (1, 3, 5, 20):
            parts = split_text(text, n)
            assert len(parts) == n and "".join(parts) == text


# --------------------------------------------------------------------------- #
# basic endpoints
# --------------------------------------------------------------------------- #
def test_chat_completion(fake_openai):
    r = sync_client(fake_openai).chat.completions.create(model="fake-gpt-4o", messages=MSG)
    assert r.id.startswith("chatcmpl-")
    assert r.object == "chat.completion"
    assert r.model == "fake-gpt-4o"
    assert isinstance(r.created, int)
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: hello fake world"
    assert choice.finish_reason == "stop"
    assert r.usage.prompt_tokens == 3
    assert r.usage.completion_tokens == 4
    assert r.usage.total_tokens == 7

    (req,) = fake_openai.requests
    assert req.method == "POST" and req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["content-type"].startswith("application/json")
    assert req.json["messages"] == MSG
    assert req.model == "fake-gpt-4o"
    assert isinstance(req.body, bytes)


def test_multipart_content_and_last_user_message(fake_openai):
    messages = [
        {"role": "system", "content": "be terse"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]},
    ]
    r = sync_client(fake_openai).chat.completions.create(model="fake", messages=messages)
    assert r.choices[0].message.content == "echo: part one part two"


async def test_async_chat_completion(fake_openai):
    async with async_client(fake_openai) as client:
        r = await client.chat.completions.create(model="fake", messages=MSG)
    assert r.choices[0].message.content == "echo: hello fake world"


def test_models_and_health(fake_openai):
    ids = [m.id for m in sync_client(fake_openai).models.list()]
    assert "fake" in ids and len(ids) >= 2
    assert httpx.get(f"{fake_openai.url}/health", timeout=5).status_code == 200
    # /health is never recorded
    assert [r.path for r in fake_openai.requests] == ["/v1/models"]


def test_embeddings_float_and_base64(fake_openai):
    client = sync_client(fake_openai)
    r_b64 = client.embeddings.create(model="fake-embedding", input=["one two", "three"])  # SDK asks for base64
    r_flt = client.embeddings.create(model="fake-embedding", input=["one two", "three"], encoding_format="float")
    assert fake_openai.requests[0].json["encoding_format"] == "base64"
    assert [d.index for d in r_flt.data] == [0, 1]
    assert len(r_flt.data[0].embedding) == 8
    assert r_b64.data[0].embedding == r_flt.data[0].embedding  # identical (float32 round trip)
    assert r_flt.data[0].embedding != r_flt.data[1].embedding
    assert r_flt.usage.prompt_tokens == 3 and r_flt.usage.total_tokens == 3
    assert r_flt.model == "fake-embedding"
    r_dims = client.embeddings.create(model="e", input="x", dimensions=4, encoding_format="float")
    assert len(r_dims.data[0].embedding) == 4


def test_unknown_path_and_malformed_json(fake_openai):
    h = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    r = httpx.post(f"{fake_openai.base_url}/nope", headers=h, json={"model": "fake"}, timeout=5)
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(f"{fake_openai.base_url}/chat/completions", headers=h, content=b"{not json", timeout=5)
    assert r.status_code == 400
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
    assert fake_openai.requests[-1].body == b"{not json" and fake_openai.requests[-1].json is None
    r = httpx.post(f"{fake_openai.base_url}/chat/completions", headers=h, json={"model": "fake"}, timeout=5)
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"


# --------------------------------------------------------------------------- #
# auth
# --------------------------------------------------------------------------- #
def test_wrong_key_401(fake_openai):
    with pytest.raises(openai.AuthenticationError) as ei:
        sync_client(fake_openai, key="sk-wrong").chat.completions.create(model="fake", messages=MSG)
    assert ei.value.status_code == 401
    assert ei.value.body["code"] == "invalid_api_key"
    assert ei.value.body["type"] == "invalid_request_error"
    assert "param" in ei.value.body
    r = httpx.post(f"{fake_openai.base_url}/chat/completions", json={"model": "fake", "messages": MSG}, timeout=5)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_no_auth_when_api_key_none(fake_openai_factory):
    fake = fake_openai_factory(api_key=None)
    r = sync_client(fake, key="anything").chat.completions.create(model="fake", messages=MSG)
    assert r.choices[0].message.content == "echo: hello fake world"


# --------------------------------------------------------------------------- #
# streaming
# --------------------------------------------------------------------------- #
async def test_stream_arrives_incrementally(fake_openai):
    async with async_client(fake_openai) as client:
        stream = await client.chat.completions.create(
            model="fake~chunks=5~chunk_delay_ms=100", messages=MSG, stream=True
        )
        arrivals: list[tuple[float, str]] = []
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append((time.monotonic(), chunk.choices[0].delta.content))
    assert len(arrivals) == 5
    assert "".join(c for _, c in arrivals) == "echo: hello fake world"
    # 4 inter-chunk gaps of 100 ms between first and last content chunk
    assert arrivals[-1][0] - arrivals[0][0] >= 0.3


def test_stream_incremental_via_script_sync(fake_openai):
    fake_openai.script(Behaviour(chunks=5, chunk_delay_ms=100))
    stream = sync_client(fake_openai).chat.completions.create(model="fake", messages=MSG, stream=True)
    times = [time.monotonic() for c in stream if c.choices and c.choices[0].delta.content]
    assert len(times) == 5 and times[-1] - times[0] >= 0.3


def test_stream_shape_and_usage_chunk(fake_openai):
    chunks = list(
        sync_client(fake_openai).chat.completions.create(
            model="fake", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.object == "chat.completion.chunk" and c.model == "fake" for c in chunks)
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks[1:4]]
    assert len(content) == 3 and "".join(content) == "echo: hello fake world"  # default: 3 content chunks
    assert chunks[4].choices[0].finish_reason == "stop"
    usage_chunk = chunks[5]
    assert usage_chunk.choices == []
    assert usage_chunk.usage.total_tokens == usage_chunk.usage.prompt_tokens + usage_chunk.usage.completion_tokens == 7
    assert len(chunks) == 6


def test_raw_sse_wire_format(fake_openai):
    with httpx.stream(
        "POST",
        f"{fake_openai.base_url}/chat/completions",
        headers={"authorization": f"Bearer {KEY}"},
        json={"model": "fake", "messages": MSG, "stream": True},
        timeout=5,
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    for ev in events[:-2]:
        assert ev.startswith("data: ")
        json.loads(ev[len("data: ") :])
    assert len(events[:-2]) == 5  # role + 3 content + finish (no usage chunk without include_usage)


# --------------------------------------------------------------------------- #
# tools
# --------------------------------------------------------------------------- #
def test_tool_call(fake_openai):
    r = sync_client(fake_openai).chat.completions.create(model="fake", messages=MSG, tools=TOOLS)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"arg": "value"}


def test_tool_choice_forced_and_tool_result(fake_openai):
    client = sync_client(fake_openai)
    r = client.chat.completions.create(
        model="fake", messages=MSG, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "other_tool"}}
    )
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "other_tool"
    # after a tool result the model answers with text
    messages = MSG + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    r2 = client.chat.completions.create(model="fake", messages=messages, tools=TOOLS)
    assert r2.choices[0].finish_reason == "stop"
    assert r2.choices[0].message.content == "echo: sunny"


def test_tool_call_streaming(fake_openai):
    chunks = list(sync_client(fake_openai).chat.completions.create(model="fake", messages=MSG, tools=TOOLS, stream=True))
    first = chunks[0].choices[0].delta.tool_calls[0]
    assert first.function.name == "get_weather" and first.id.startswith("call_")
    args = "".join(
        tc.function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
        for tc in c.choices[0].delta.tool_calls
    )
    assert json.loads(args) == {"arg": "value"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


# --------------------------------------------------------------------------- #
# scripted / directed failures
# --------------------------------------------------------------------------- #
def test_scripted_errors_then_normal(fake_openai):
    client = sync_client(fake_openai)
    fake_openai.script(Behaviour(status=503), Behaviour(status=429, headers={"retry-after": "1"}))
    with pytest.raises(openai.InternalServerError) as e503:
        client.chat.completions.create(model="fake", messages=MSG)
    assert e503.value.status_code == 503 and e503.value.body["type"] == "server_error"
    with pytest.raises(openai.RateLimitError) as e429:
        client.chat.completions.create(model="fake", messages=MSG)
    assert e429.value.response.headers["retry-after"] == "1"
    assert e429.value.body["type"] == "rate_limit_exceeded"
    # script used up -> normal
    assert client.chat.completions.create(model="fake", messages=MSG).choices[0].message.content
    assert len(fake_openai.requests) == 3 and fake_openai.pending_script == 0


def test_model_directive_errors(fake_openai):
    client = sync_client(fake_openai)
    with pytest.raises(openai.InternalServerError) as ei:
        client.chat.completions.create(model="fake~status=500", messages=MSG)
    assert ei.value.status_code == 500
    with pytest.raises(openai.RateLimitError) as ei:
        client.chat.completions.create(model="fake~status=429~retry_after=7", messages=MSG)
    assert ei.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.BadRequestError, match="unknown fake model directive"):
        client.chat.completions.create(model="fake~nonsense=1", messages=MSG)
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="emb~status=502", input="x")


def test_set_default_and_reset(fake_openai):
    client = sync_client(fake_openai)
    fake_openai.set_default(Behaviour(status=503))
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="fake", messages=MSG)
    client.models.list()  # GET never consumes / applies behaviours
    fake_openai.script(Behaviour(content="scripted"))
    assert client.chat.completions.create(model="fake", messages=MSG).choices[0].message.content == "scripted"
    assert len(fake_openai.requests) == 4
    fake_openai.reset()
    assert fake_openai.requests == []
    assert client.chat.completions.create(model="fake", messages=MSG).choices[0].message.content.startswith("echo:")


def test_stall_and_client_timeout(fake_openai):
    fake_openai.script(Behaviour(stall_seconds=5))
    t0 = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        sync_client(fake_openai, timeout=0.5).chat.completions.create(model="fake", messages=MSG)
    assert time.monotonic() - t0 < 3
    # the request was recorded before the stall
    assert fake_openai.wait_for_requests(1, timeout=1)[0].json["messages"] == MSG


async def test_stall_directive_delays_response(fake_openai):
    async with async_client(fake_openai) as client:
        t0 = time.monotonic()
        r = await client.chat.completions.create(model="fake~stall=0.4", messages=MSG)
        assert time.monotonic() - t0 >= 0.35
        assert r.model == "fake~stall=0.4"  # echoed verbatim


def test_garbage(fake_openai):
    client = sync_client(fake_openai)
    fake_openai.script(Behaviour(garbage=True))
    with pytest.raises((ValueError, openai.APIError)):  # the SDK surfaces a JSONDecodeError
        client.chat.completions.create(model="fake", messages=MSG)
    h = {"authorization": f"Bearer {KEY}"}
    r = httpx.post(f"{fake_openai.base_url}/chat/completions", headers=h, json={"model": "fake~garbage=1", "messages": MSG})
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()
    with pytest.raises((ValueError, openai.APIError)):
        list(client.chat.completions.create(model="fake~garbage=1", messages=MSG, stream=True))


async def test_disconnect_mid_stream(fake_openai):
    fake_openai.script(Behaviour(disconnect_after_chunks=2))
    received = []
    async with async_client(fake_openai) as client:
        stream = await client.chat.completions.create(model="fake", messages=MSG, stream=True)
        with pytest.raises(openai.APIConnectionError):
            async for chunk in stream:
                received.append(chunk)
    assert len(received) == 2  # role chunk + first content chunk, then the connection dropped


def test_disconnect_mid_stream_sync_directive(fake_openai):
    received = []
    stream = sync_client(fake_openai).chat.completions.create(
        model="fake~chunks=10~disconnect_after=4", messages=MSG, stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 4


def test_disconnect_without_response_and_truncated_body(fake_openai):
    client = sync_client(fake_openai)
    fake_openai.script(Behaviour(disconnect=True), Behaviour(disconnect_after_chunks=1))
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="fake", messages=MSG)
    with pytest.raises(openai.APIConnectionError):  # truncated non-streaming body
        client.chat.completions.create(model="fake", messages=MSG)
    assert client.chat.completions.create(model="fake", messages=MSG).choices[0].message.content


def test_stall_mid_stream(fake_openai):
    fake_openai.script(Behaviour(stall_after_chunks=2, stall_seconds=5))
    received = []
    t0 = time.monotonic()
    stream = sync_client(fake_openai, timeout=0.5).chat.completions.create(model="fake", messages=MSG, stream=True)
    with pytest.raises((openai.APITimeoutError, openai.APIConnectionError, httpx.TimeoutException)):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 2 and time.monotonic() - t0 < 3


async def test_stall_mid_stream_then_resumes(fake_openai):
    async with async_client(fake_openai) as client:
        stream = await client.chat.completions.create(
            model="fake~stall_after=2~stall=0.4", messages=MSG, stream=True
        )
        times = [time.monotonic() async for _ in stream]
    assert len(times) == 5
    assert times[2] - times[1] >= 0.35  # the gap is after the 2nd event
    assert times[1] - times[0] < 0.3


# --------------------------------------------------------------------------- #
# lifecycle / concurrency
# --------------------------------------------------------------------------- #
async def test_concurrent_requests(fake_openai):
    async with async_client(fake_openai) as client:
        t0 = time.monotonic()
        rs = await asyncio.gather(
            *(client.chat.completions.create(model="fake~stall=0.3", messages=[{"role": "user", "content": f"m{i}"}]) for i in range(10))
        )
        assert time.monotonic() - t0 < 2.5
    assert sorted(r.choices[0].message.content for r in rs) == sorted(f"echo: m{i}" for i in range(10))
    assert len(fake_openai.wait_for_requests(10, timeout=1)) == 10


def test_stop_is_bounded_with_inflight_stall():
    fake = FakeOpenAI().start()
    fake.script(Behaviour(stall_seconds=30))
    errors: list[BaseException] = []

    def call():
        try:
            sync_client(fake, timeout=20).chat.completions.create(model="fake", messages=MSG)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    fake.wait_for_requests(1, timeout=5)
    t0 = time.monotonic()
    fake.stop()
    assert time.monotonic() - t0 < 3
    t.join(5)
    assert not t.is_alive() and errors and isinstance(errors[0], openai.APIConnectionError)
    assert not fake.running


def test_restart_same_port_and_context_manager():
    with FakeOpenAI() as fake:
        url = fake.base_url
        assert sync_client(fake).chat.completions.create(model="fake", messages=MSG)
        fake.stop()
        with pytest.raises(openai.APIConnectionError):
            sync_client(fake).chat.completions.create(model="fake", messages=MSG)
        fake.start()
        assert fake.base_url == url
        assert sync_client(fake).chat.completions.create(model="fake", messages=MSG)
    assert not fake.running
