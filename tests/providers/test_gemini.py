"""Gemini: the fake provider against the official google-genai SDK, and the GeminiAdapter
against the fake over real HTTP (responses, SSE streams in random splits, tool calls, errors).
The adapter's wire output is also validated by the SDK's own strict (extra="forbid") types."""

from __future__ import annotations

import random
from typing import Any

import httpx
import orjson
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from aigw_config.config import ProviderConfig
from aigw_gateway.errors import (
    GatewayError,
    InvalidRequest,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
)
from aigw_gateway.providers.gemini import GeminiAdapter, gemini_request, gemini_schema
from tests.fakes.gemini_fixtures import FAKE_GEMINI_API_KEY, fake_gemini  # noqa: F401
from tests.fakes.gemini_provider import Behaviour, FakeGemini

KEY = FAKE_GEMINI_API_KEY
ADAPTER = GeminiAdapter()
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"], "enum": ["c", "f"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
USER_X = {"messages": [{"role": "user", "content": "x"}]}
NO_RETRY = types.HttpRetryOptions(attempts=1)


def sdk(fake: FakeGemini, key: str = KEY, version: str | None = "v1beta") -> genai.Client:
    """Keep the client in a variable while using it: a collected Client closes its HTTP client."""
    return genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=fake.base_url, api_version=version, timeout=10_000, retry_options=NO_RETRY))


def provider(fake: FakeGemini, base_url: str | None = None) -> ProviderConfig:
    return ProviderConfig(name="gemini-test", provider="gemini", baseURL=base_url or fake.base_url, has_api_key=True)


# --------------------------------------------------------------------------- #
# the fake, driven by the official SDK
# --------------------------------------------------------------------------- #
def test_sdk_generate_content(fake_gemini):
    client = sdk(fake_gemini)
    r = client.models.generate_content(
        model="gemini-fake", contents="hello fake world",
        config=types.GenerateContentConfig(system_instruction="be brief", max_output_tokens=20))
    assert r.text == "echo: hello fake world"
    assert r.candidates[0].finish_reason == types.FinishReason.STOP
    assert r.model_version == "gemini-fake" and r.response_id
    assert (r.usage_metadata.prompt_token_count, r.usage_metadata.candidates_token_count) == (5, 4)
    assert r.usage_metadata.total_token_count == 9
    (req,) = fake_gemini.requests
    assert req.path == "/v1beta/models/gemini-fake:generateContent"
    assert req.api_key == KEY and req.model == "gemini-fake"
    assert req.json["systemInstruction"]["parts"] == [{"text": "be brief"}]


def test_sdk_default_api_version_path(fake_gemini):
    client = sdk(fake_gemini, version=None)
    r = client.models.generate_content(model="gemini-fake", contents="hi")
    assert r.text == "echo: hi"
    assert fake_gemini.requests[0].path.startswith("/v1/models/gemini-fake:")


def test_sdk_stream(fake_gemini):
    client = sdk(fake_gemini)
    chunks = list(client.models.generate_content_stream(model="gemini-fake~chunks=4", contents="stream me"))
    assert len(chunks) == 4
    assert "".join(c.text or "" for c in chunks) == "echo: stream me"
    assert [c.candidates[0].finish_reason for c in chunks][-1] == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == 3
    assert fake_gemini.requests[0].query == {"alt": "sse"}


async def test_async_sdk_stream(fake_gemini):
    client = sdk(fake_gemini)
    stream = await client.aio.models.generate_content_stream(model="gemini-fake", contents="async hello")
    texts = [c.text async for c in stream]
    assert "".join(t or "" for t in texts) == "echo: async hello"


def test_sdk_function_calling_round_trip(fake_gemini):
    client = sdk(fake_gemini)
    declaration = types.FunctionDeclaration(name="get_weather", parameters=types.Schema(
        type="OBJECT", properties={"city": types.Schema(type="STRING")}))
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[declaration])])
    first = client.models.generate_content(model="gemini-fake", contents="weather in Paris?", config=config)
    (call,) = first.function_calls
    assert (call.name, call.args) == ("get_weather", {"arg": "value"})
    answer = types.Part.from_function_response(name="get_weather", response={"output": "sunny"})
    history = [
        types.Content(role="user", parts=[types.Part(text="weather in Paris?")]),
        first.candidates[0].content,
        types.Content(role="user", parts=[answer]),
    ]
    second = client.models.generate_content(model="gemini-fake", contents=history, config=config)
    assert second.text == "echo: sunny" and not second.function_calls


def test_sdk_tool_config_modes(fake_gemini):
    client = sdk(fake_gemini)
    decls = [types.FunctionDeclaration(name="a"), types.FunctionDeclaration(name="b")]

    def ask(mode: str, allowed: list[str] | None = None) -> types.GenerateContentResponse:
        return client.models.generate_content(model="gemini-fake", contents="x", config=types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=decls)],
            tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
                mode=mode, allowed_function_names=allowed))))

    assert ask("NONE").text == "echo: x"
    assert ask("ANY", ["b"]).function_calls[0].name == "b"
    assert ask("AUTO").function_calls[0].name == "a"


def test_sdk_stream_function_call(fake_gemini):
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[types.FunctionDeclaration(name="f")])])
    client = sdk(fake_gemini)
    chunks = list(client.models.generate_content_stream(model="gemini-fake", contents="x", config=config))
    assert [c.function_calls[0].name for c in chunks if c.function_calls] == ["f"]


def test_sdk_credentials_are_checked_like_google(fake_gemini):
    client = sdk(fake_gemini, key="wrong")
    with pytest.raises(genai_errors.ClientError) as bad:
        client.models.generate_content(model="gemini-fake", contents="x")
    assert (bad.value.code, bad.value.status) == (400, "INVALID_ARGUMENT")
    assert bad.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    url = f"{fake_gemini.base_url}/v1beta/models/gemini-fake:generateContent"
    r = httpx.post(url, json={"contents": []}, timeout=5)
    assert r.status_code == 403 and r.json()["error"]["status"] == "PERMISSION_DENIED"
    ok = httpx.post(f"{url}?key={KEY}", json={"contents": [{"parts": [{"text": "q"}]}]}, timeout=5)
    assert ok.status_code == 200 and ok.json()["candidates"][0]["content"]["parts"][0]["text"] == "echo: q"


@pytest.mark.parametrize(("status", "google_status", "error_cls"), [
    (429, "RESOURCE_EXHAUSTED", genai_errors.ClientError),
    (503, "UNAVAILABLE", genai_errors.ServerError),
    (500, "INTERNAL", genai_errors.ServerError),
])
def test_sdk_sees_google_error_shapes(fake_gemini, status, google_status, error_cls):
    fake_gemini.script(Behaviour(status=status))
    client = sdk(fake_gemini)
    with pytest.raises(error_cls) as exc:
        client.models.generate_content(model="gemini-fake", contents="x")
    assert (exc.value.code, exc.value.status) == (status, google_status)


def test_fake_validates_and_scripts(fake_gemini):
    url = f"{fake_gemini.base_url}/v1beta/models/gemini-fake"
    h = {"x-goog-api-key": KEY}
    r = httpx.post(url + ":generateContent", json={"contents": [{"role": "bot", "parts": [{"text": "x"}]}]}, headers=h)
    assert r.status_code == 400 and "role" in r.json()["error"]["message"]
    r = httpx.post(url + "~bogus=1:generateContent", json={"contents": []}, headers=h)
    assert r.status_code == 400 and "unknown fake model directive" in r.json()["error"]["message"]
    fake_gemini.script(Behaviour(garbage=True))
    assert httpx.post(url + ":generateContent", json={}, headers=h).content.startswith(b"<html>")
    body = {"contents": [{"role": "user", "parts": [{"text": "array"}]}]}
    r = httpx.post(url + ":streamGenerateContent", json=body, headers=h)  # without alt=sse: a JSON array
    assert "".join(a["candidates"][0]["content"]["parts"][0]["text"] for a in r.json()) == "echo: array"
    with httpx.stream("POST", url + "~disconnect_after=1:streamGenerateContent?alt=sse", json=body, headers=h) as s:
        received = b""
        with pytest.raises(httpx.RemoteProtocolError):
            for data in s.iter_raw():
                received += data
    assert received.count(b"data: ") == 1
    assert len(fake_gemini.requests) == 5


# --------------------------------------------------------------------------- #
# the adapter against the fake, over real HTTP
# --------------------------------------------------------------------------- #
def splits(data: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, 7)
        out.append(data[i:i + n])
        i += n
    return out


async def call(fake: FakeGemini, request: dict[str, Any], *, stream: bool = False, model: str = "gemini-fake",
               key: str | None = KEY, seed: int = 0) -> Any:
    """One upstream round trip through the adapter: a completion, or (chunks, error) for streams."""
    up = ADAPTER.chat_request(provider(fake), key, model, request, stream)
    async with httpx.AsyncClient(timeout=10) as client, \
            client.stream(up.method, up.url, headers=up.headers, content=up.content) as resp:
        if resp.status_code >= 400:
            raise ADAPTER.error_for(resp.status_code, await resp.aread(), dict(resp.headers), "gemini-test")
        if not stream:
            return ADAPTER.chat_response(await resp.aread(), "gemini-test", model)
        translator = ADAPTER.stream_translator("gemini-test", model)
        rng = random.Random(seed)
        chunks: list[dict[str, Any]] = []
        try:
            async for data in resp.aiter_raw():
                for piece in splits(data, rng):
                    chunks.extend(translator.feed(piece))
        except httpx.RemoteProtocolError:
            pass  # a dropped connection: finish() must notice the missing end
        try:
            chunks.extend(translator.finish())
        except GatewayError as err:
            return chunks, err
        return chunks, None


def joined(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


async def test_adapter_chat(fake_gemini):
    messages = [{"role": "system", "content": "terse"}, {"role": "user", "content": "hello there"}]
    r = await call(fake_gemini, {"messages": messages, "max_tokens": 30, "temperature": 0.2, "stop": "END"})
    assert r["object"] == "chat.completion" and r["id"].startswith("chatcmpl-")
    assert r["choices"][0] == {
        "index": 0, "message": {"role": "assistant", "content": "echo: hello there"}, "finish_reason": "stop"}
    assert r["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    req = fake_gemini.requests[0]
    assert req.path == "/v1beta/models/gemini-fake:generateContent" and req.api_key == KEY
    assert req.headers.get("authorization") is None
    assert req.json["systemInstruction"] == {"parts": [{"text": "terse"}]}
    assert req.json["generationConfig"] == {
        "candidateCount": 1, "maxOutputTokens": 30, "temperature": 0.2, "stopSequences": ["END"]}


@pytest.mark.parametrize("seed", range(5))
async def test_adapter_stream_in_random_splits(fake_gemini, seed):
    request = {"messages": [{"role": "user", "content": "split me up please"}], "stream": True}
    chunks, err = await call(fake_gemini, request, stream=True, model="gemini-fake~chunks=5", seed=seed)
    assert err is None
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert joined(chunks) == "echo: split me up please"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}
    assert len({c["id"] for c in chunks}) == 1 and all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert fake_gemini.requests[0].query == {"alt": "sse"}


@pytest.mark.parametrize("stream", [False, True])
async def test_adapter_tool_call_round_trip(fake_gemini, stream):
    messages: list[dict[str, Any]] = [{"role": "user", "content": "weather in Paris?"}]
    request = {"messages": messages, "tools": [WEATHER], "tool_choice": "auto"}
    if stream:
        chunks, err = await call(fake_gemini, request, stream=True)
        assert err is None
        (delta,) = [c["choices"][0]["delta"] for c in chunks if c["choices"][0]["delta"].get("tool_calls")]
        call_ = delta["tool_calls"][0]
        assert call_["index"] == 0
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    else:
        r = await call(fake_gemini, request)
        assert r["choices"][0]["finish_reason"] == "tool_calls" and r["choices"][0]["message"]["content"] is None
        (call_,) = r["choices"][0]["message"]["tool_calls"]
    assert call_["id"].startswith("call_") and call_["type"] == "function"
    assert call_["function"] == {"name": "get_weather", "arguments": '{"arg":"value"}'}
    sent = fake_gemini.requests[0].json
    params = sent["tools"][0]["functionDeclarations"][0]["parameters"]
    assert params == {"type": "OBJECT", "required": ["city"], "properties": {
        "city": {"type": "STRING"}, "unit": {"type": "STRING", "nullable": True, "enum": ["c", "f"]}}}
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}

    messages += [
        {"role": "assistant", "content": None, "tool_calls": [{k: call_[k] for k in ("id", "type", "function")}]},
        {"role": "tool", "tool_call_id": call_["id"], "content": "sunny"},
    ]
    r = await call(fake_gemini, {"messages": messages, "tools": [WEATHER]})
    assert r["choices"][0]["message"]["content"] == "echo: sunny"
    contents = fake_gemini.requests[1].json["contents"]
    assert contents[1] == {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"arg": "value"}}}]}
    assert contents[2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}]}


@pytest.mark.parametrize(("behaviour", "key", "error_cls", "status"), [
    (Behaviour(status=429, headers={"retry-after": "7"}), KEY, UpstreamRateLimited, 429),
    (Behaviour(status=503), KEY, UpstreamError, 502),
    (Behaviour(status=500), KEY, UpstreamError, 502),
    (Behaviour(status=400, error_message="bad field"), KEY, UpstreamRejected, 400),
    (None, "wrong-key", UpstreamError, 502),  # Google's 400 API_KEY_INVALID is our credential, not the client
    (None, None, UpstreamError, 502),  # 403 PERMISSION_DENIED
])
async def test_adapter_maps_errors(fake_gemini, behaviour, key, error_cls, status):
    if behaviour:
        fake_gemini.script(behaviour)
    with pytest.raises(error_cls) as exc:
        await call(fake_gemini, USER_X, key=key)
    assert type(exc.value) is error_cls and exc.value.status_code == status
    if status == 429:
        assert exc.value.headers == {"retry-after": "7"} and exc.value.retryable
    if error_cls is UpstreamRejected:
        assert "bad field" in exc.value.message and not exc.value.retryable


async def test_adapter_bad_bodies_and_truncated_streams(fake_gemini):
    fake_gemini.script(Behaviour(garbage=True))
    with pytest.raises(UpstreamBadResponse):
        await call(fake_gemini, USER_X)
    fake_gemini.script(Behaviour(garbage=True))
    with pytest.raises(UpstreamBadResponse, match="not JSON"):
        await call(fake_gemini, USER_X, stream=True)
    chunks, err = await call(fake_gemini, USER_X, stream=True, model="gemini-fake~disconnect_after=2")
    assert isinstance(err, UpstreamBadResponse) and "finishReason" in err.message
    assert joined(chunks) == "echo" and not any(c["choices"][0]["finish_reason"] for c in chunks)


async def test_adapter_base_urls_and_model_prefix(fake_gemini):
    for base in (fake_gemini.base_url + "/", fake_gemini.base_url + "/v1beta"):
        up = ADAPTER.chat_request(provider(fake_gemini, base), KEY, "models/gemini-fake", USER_X, False)
        assert up.url == fake_gemini.base_url + "/v1beta/models/gemini-fake:generateContent"
    up = ADAPTER.chat_request(provider(fake_gemini), None, "gemini-fake", USER_X, True)
    assert up.url.endswith(":streamGenerateContent?alt=sse") and "x-goog-api-key" not in up.headers
    assert up.headers["accept"] == "text/event-stream"


# --------------------------------------------------------------------------- #
# translation details, checked against the SDK's strict wire types
# --------------------------------------------------------------------------- #
def test_request_translation_is_valid_gemini():
    png = "data:image/png;base64,iVBORw=="
    no_args = {"type": "function", "function": {"name": "noargs", "parameters": {"type": "object", "properties": {}}}}
    request = {
        "messages": [
            {"role": "system", "content": "sys one"},
            {"role": "developer", "content": [{"type": "text", "text": "sys two"}]},
            {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": png}},
                                         {"type": "image_url", "image_url": {"url": "https://x.test/cat.webp"}}]},
            {"role": "user", "content": "and this"},
            {"role": "assistant", "content": "checking", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "a", "arguments": '{"q": 1}'}},
                {"id": "c2", "type": "function", "function": {"name": "b", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "c2", "content": '{"temp": 20}'},
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "plain"}]},
        ],
        "tools": [WEATHER, no_args],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "max_completion_tokens": 99, "top_p": 0.5, "seed": 3, "stop": ["a", "b"],
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {
            "type": "object", "properties": {"n": {"type": "integer"}}, "additionalProperties": False}}},
    }
    body = gemini_request(request, "gemini-2.5-flash")
    assert body["systemInstruction"] == {"parts": [{"text": "sys one"}, {"text": "sys two"}]}
    user, model, tools = body["contents"]
    assert user["role"] == "user" and len(user["parts"]) == 4  # consecutive user messages merged
    assert user["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw=="}}
    assert user["parts"][2] == {"fileData": {"fileUri": "https://x.test/cat.webp", "mimeType": "image/webp"}}
    assert model["parts"] == [{"text": "checking"}, {"functionCall": {"name": "a", "args": {"q": 1}}},
                              {"functionCall": {"name": "b", "args": {}}}]
    assert tools == {"role": "user", "parts": [{"functionResponse": {"name": "b", "response": {"temp": 20}}},
                                               {"functionResponse": {"name": "a", "response": {"output": "plain"}}}]}
    assert [d["name"] for d in body["tools"][0]["functionDeclarations"]] == ["get_weather", "noargs"]
    assert "parameters" not in body["tools"][0]["functionDeclarations"][1]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    assert body["generationConfig"] == {
        "candidateCount": 1, "maxOutputTokens": 99, "topP": 0.5, "seed": 3, "stopSequences": ["a", "b"],
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}},
    }
    # the SDK's wire types forbid unknown fields: every piece must validate
    for content in body["contents"]:
        types.Content.model_validate(content)
    types.Content.model_validate(body["systemInstruction"])
    types.Tool.model_validate(body["tools"][0])
    types.ToolConfig.model_validate(body["toolConfig"])
    types.GenerationConfig.model_validate(body["generationConfig"])


def test_schema_subset():
    item = {"type": "object", "properties": {"sku": {"type": "string", "format": "uuid"}}, "additionalProperties": False}
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {"Item": item},
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 1},
            "mode": {"const": "fast"},
            "level": {"type": "integer", "enum": [1, 2]},
            "maybe": {"anyOf": [{"type": "number"}, {"type": "null"}]},
            "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            "both": {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                               {"properties": {"b": {"type": "boolean"}}}]},
            "tree": {"$ref": "#"},
        },
        "required": ["items", "missing"],
    }
    out = gemini_schema(schema)
    props = out["properties"]
    assert props["items"] == {
        "type": "ARRAY", "minItems": 1, "items": {"type": "OBJECT", "properties": {"sku": {"type": "STRING"}}}}
    assert props["mode"] == {"type": "STRING", "enum": ["fast"]}
    assert props["level"] == {"type": "INTEGER"}  # Gemini enums are strings only
    assert props["maybe"] == {"type": "NUMBER", "nullable": True}
    assert props["either"] == {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}
    assert props["both"]["properties"] == {"a": {"type": "STRING"}, "b": {"type": "BOOLEAN"}}
    assert props["both"]["required"] == ["a"]
    assert out["required"] == ["items"]
    types.Schema.model_validate(out)  # recursion through "#" is bounded and still valid


def test_request_rejections_and_gemini3_signature():
    with pytest.raises(InvalidRequest) as exc:
        gemini_request({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}, "gemini-2.5-flash")
    assert exc.value.param == "messages[0].tool_call_id"
    with pytest.raises(InvalidRequest):
        gemini_request({"messages": [{"role": "system", "content": "only system"}]}, "gemini-2.5-flash")
    with pytest.raises(InvalidRequest):  # Gemini refuses empty text parts, and nothing else is left
        gemini_request({"messages": [{"role": "user", "content": ""}]}, "gemini-2.5-flash")
    empty_then_text = [{"role": "user", "content": [{"type": "text", "text": ""}]}, {"role": "user", "content": "q"}]
    assert gemini_request({"messages": empty_then_text}, "g")["contents"] == [{"role": "user", "parts": [{"text": "q"}]}]
    raw_image = [{"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]
    with pytest.raises(InvalidRequest):
        gemini_request({"messages": [{"role": "user", "content": raw_image}]}, "g")
    history = {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
        {"id": "1", "function": {"name": "a", "arguments": "{}"}},
        {"id": "2", "function": {"name": "b", "arguments": "{}"}}]}]}
    parts = gemini_request(history, "gemini-3-pro-preview")["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == "skip_thought_signature_validator" and "thoughtSignature" not in parts[1]
    assert "thoughtSignature" not in gemini_request(history, "gemini-2.5-pro")["contents"][1]["parts"][0]


@pytest.mark.parametrize(("gemini", "canonical"), [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("OTHER", "stop"),
])
def test_finish_reasons(gemini, canonical):
    body = orjson.dumps({"candidates": [{"content": {"role": "model", "parts": [{"text": "t"}]}, "finishReason": gemini}]})
    assert ADAPTER.chat_response(body, "t", "m")["choices"][0]["finish_reason"] == canonical


def test_response_thoughts_usage_blocked_and_errors():
    parts = [{"text": "hmm", "thought": True}, {"text": "a"}, {"text": "b"}]
    body = orjson.dumps({
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "thoughtsTokenCount": 10,
                          "totalTokenCount": 16},
        "modelVersion": "gemini-2.5-flash-001", "responseId": "abc",
    })
    r = ADAPTER.chat_response(body, "t", "gemini-2.5-flash")
    assert r["id"] == "chatcmpl-abc" and r["model"] == "gemini-2.5-flash-001"
    assert r["choices"][0]["message"]["content"] == "ab"
    assert r["usage"] == {"prompt_tokens": 4, "completion_tokens": 12, "total_tokens": 16,
                          "completion_tokens_details": {"reasoning_tokens": 10}}
    blocked = orjson.dumps({"promptFeedback": {"blockReason": "SAFETY"},
                            "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3}})
    r = ADAPTER.chat_response(blocked, "t", "m")
    assert r["choices"][0]["finish_reason"] == "content_filter" and r["choices"][0]["message"]["content"] is None
    with pytest.raises(UpstreamBadResponse):
        ADAPTER.chat_response(b'{"candidates": []}', "t", "m")
    quota = orjson.dumps({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}})
    err = ADAPTER.error_for(429, quota, {}, "t")
    assert isinstance(err, UpstreamRateLimited) and err.headers == {"retry-after": "37"}
    assert isinstance(ADAPTER.error_for(500, b"<html>", {}, "t"), UpstreamError)


def test_stream_translator_edge_cases():
    t = ADAPTER.stream_translator("t", "m")
    chunks = t.feed(b'data: {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}\r\n\r\n')
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, "content_filter"]
    assert t.finish() == []

    t = ADAPTER.stream_translator("t", "m")
    t.feed(b'data: {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "STOP"}]}\n\n')
    late = t.feed(b'data: {"usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}}\n\n')
    assert late == [{"id": late[0]["id"], "object": "chat.completion.chunk", "created": late[0]["created"], "model": "m",
                     "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}]

    t = ADAPTER.stream_translator("t", "m")
    t.feed(b'data: {"candidates": [{"content": {"parts": [{"text": "x"}]}}]}\n\n')
    with pytest.raises(UpstreamRateLimited):
        t.feed(b'data: {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}\n\n')
    with pytest.raises(UpstreamBadResponse, match="finishReason"):
        ADAPTER.stream_translator("t", "m").finish()
