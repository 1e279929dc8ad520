"""The Gemini ingress: requests exactly as google-genai sends them, and responses, streams and
errors rendered so that google-genai reads them. A tiny aiohttp server plays the gateway:
SDK -> GeminiIngress -> a backend -> GeminiIngress -> SDK, with scripted canonical backends and
real adapters in front of the fake Gemini and fake OpenAI servers."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from aigw_config.config import ProviderConfig
from aigw_gateway.errors import GatewayError, InvalidRequest, UpstreamError, UpstreamRateLimited, render_error
from aigw_gateway.ingress.gemini import INGRESS, GeminiStreamEncoder
from aigw_gateway.providers.gemini import GeminiAdapter
from aigw_gateway.providers.openai import OpenAIAdapter
from tests.fakes.fixtures import FAKE_OPENAI_API_KEY
from tests.fakes.gemini_fixtures import FAKE_GEMINI_API_KEY, fake_gemini  # noqa: F401
from tests.fakes.gemini_provider import FakeGemini

Backend = Callable[[dict[str, Any], bool], Awaitable[Any]]
_PATH = re.compile(r"/(?:v1beta|v1)/models/([^/:]+):(generateContent|streamGenerateContent)")
NO_RETRY = types.HttpRetryOptions(attempts=1)


class IngressServer:
    """A minimal gateway in a daemon thread: parse with the ingress, ask the backend, render."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.canonical: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.SockSite(self.runner, sock).start())
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def client(self) -> genai.Client:
        """Keep the client in a variable while using it: a collected Client closes its HTTP client."""
        return genai.Client(api_key="tenant-key", http_options=types.HttpOptions(
            base_url=self.url, api_version="v1beta", timeout=10_000, retry_options=NO_RETRY))

    @staticmethod
    def _error(err: GatewayError) -> web.Response:
        body = render_error(err, "req-1", "gemini")
        return web.Response(body=body, status=err.status_code, content_type="application/json")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        match = _PATH.fullmatch(request.path)
        assert match, request.path
        model, stream = match.group(1), match.group(2) == "streamGenerateContent"
        try:
            canonical = INGRESS.parse_request(await request.json(), model=model, stream=stream)
            self.canonical.append(canonical)
            answer = await self.backend(canonical, stream)
        except GatewayError as err:
            return self._error(err)
        if not stream:
            return web.json_response(INGRESS.render_response(answer, model))
        resp = web.StreamResponse(headers={"content-type": INGRESS.stream_media_type})
        await resp.prepare(request)
        encoder = INGRESS.stream_encoder(model, canonical)
        try:
            async for chunk in answer:
                await resp.write(encoder.chunk(chunk))
            await resp.write(encoder.end())
        except GatewayError as err:
            await resp.write(encoder.error(err, "req-1"))
        return resp


@pytest.fixture
def serve():
    servers: list[IngressServer] = []

    def start(backend: Backend) -> IngressServer:
        servers.append(IngressServer(backend))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def scripted(answer: Any) -> Backend:
    async def backend(canonical: dict[str, Any], stream: bool) -> Any:
        if isinstance(answer, GatewayError):
            raise answer
        if not stream:
            return answer

        async def chunks() -> AsyncIterator[dict[str, Any]]:
            for item in answer:
                if isinstance(item, GatewayError):
                    raise item
                yield item
        return chunks()
    return backend


def via_adapter(adapter: Any, base_url: str, provider: str, key: str, model: str) -> Backend:
    """A real adapter in front of a real (fake) upstream server."""
    config = ProviderConfig(name="up", provider=provider, baseURL=base_url, has_api_key=True)

    async def backend(canonical: dict[str, Any], stream: bool) -> Any:
        up = adapter.chat_request(config, key, model, canonical, stream)
        client = httpx.AsyncClient(timeout=10)
        request = client.build_request(up.method, up.url, headers=up.headers, content=up.content)
        resp = await client.send(request, stream=True)
        if resp.status_code >= 400:
            body = await resp.aread()
            await client.aclose()
            raise adapter.error_for(resp.status_code, body, dict(resp.headers), "up")
        if not stream:
            body = await resp.aread()
            await client.aclose()
            return adapter.chat_response(body, "up", model)

        async def chunks() -> AsyncIterator[dict[str, Any]]:
            translator = adapter.stream_translator("up", model)
            try:
                async for data in resp.aiter_raw():
                    for chunk in translator.feed(data):
                        yield chunk
                for chunk in translator.finish():
                    yield chunk
            finally:
                await client.aclose()
        return chunks()
    return backend


def completion(message: dict[str, Any], finish: str = "stop", usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "upstream-model",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
            "usage": usage or {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}


def chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    c: dict[str, Any] = {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1,
                         "model": "upstream-model", "choices": choices}
    if usage:
        c["usage"] = usage
    return c


def fn_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# --------------------------------------------------------------------------- #
# requests exactly as the SDK sends them
# --------------------------------------------------------------------------- #
def test_parse_requests_as_the_sdk_sends_them(fake_gemini):
    client = genai.Client(api_key=FAKE_GEMINI_API_KEY, http_options=types.HttpOptions(
        base_url=fake_gemini.base_url, api_version="v1beta", retry_options=NO_RETRY))

    def lookup(city: str, days: int = 1) -> str:
        """Weather for a city."""
        return "sunny"

    declared = types.FunctionDeclaration(name="declared", description="d", parameters=types.Schema(
        type="OBJECT", properties={"q": types.Schema(type="STRING", nullable=True), "n": types.Schema(type="INTEGER")},
        required=["q"]))
    calling = types.FunctionCallingConfig(mode="ANY", allowed_function_names=["lookup"])
    config = types.GenerateContentConfig(
        system_instruction="be brief", temperature=0.3, top_p=0.9, max_output_tokens=64, stop_sequences=["END"],
        seed=7, response_mime_type="application/json",
        response_schema=types.Schema(type="OBJECT", properties={"a": types.Schema(type="STRING")}),
        tools=[lookup, types.Tool(function_declarations=[declared])],
        tool_config=types.ToolConfig(function_calling_config=calling),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    contents = [
        types.Content(role="user", parts=[
            types.Part(text="look at"), types.Part.from_bytes(data=b"\x89PNG", mime_type="image/png")]),
        types.Content(role="model", parts=[
            types.Part(function_call=types.FunctionCall(name="lookup", args={"city": "Paris"})),
            types.Part(function_call=types.FunctionCall(name="lookup", args={"city": "Rome"}))]),
        types.Content(role="user", parts=[
            types.Part.from_function_response(name="lookup", response={"result": "sunny"}),
            types.Part.from_function_response(name="lookup", response={"output": "rain"})]),
    ]
    client.models.generate_content(model="gemini-fake", contents=contents, config=config)
    list(client.models.generate_content_stream(model="gemini-fake", contents="hi"))
    first, streamed = fake_gemini.requests

    canonical = INGRESS.parse_request(first.json, model="gemini-fake", stream=False)
    assert canonical["model"] == "gemini-fake" and "stream" not in canonical
    assert canonical["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "look at"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            fn_call("call_1_0", "lookup", '{"city":"Paris"}'), fn_call("call_1_1", "lookup", '{"city":"Rome"}')]},
        {"role": "tool", "tool_call_id": "call_1_0", "content": '{"result":"sunny"}'},
        {"role": "tool", "tool_call_id": "call_1_1", "content": "rain"},
    ]
    lookup_fn, declared_fn = (t["function"] for t in canonical["tools"])
    assert lookup_fn["name"] == "lookup" and lookup_fn["description"] == "Weather for a city."
    # the SDK sends a Python function as `parameters_json_schema`, snake_case on the wire
    assert lookup_fn["parameters"]["properties"]["city"] == {"type": "string"}
    assert declared_fn == {"name": "declared", "description": "d", "parameters": {
        "type": "object", "properties": {"q": {"type": ["string", "null"]}, "n": {"type": "integer"}}, "required": ["q"]}}
    assert canonical["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert {k: canonical[k] for k in ("temperature", "top_p", "max_tokens", "stop", "seed")} == {
        "temperature": 0.3, "top_p": 0.9, "max_tokens": 64, "stop": ["END"], "seed": 7}
    assert canonical["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "response", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}

    assert INGRESS.parse_request(streamed.json, model="gemini-fake", stream=True) == {
        "model": "gemini-fake", "messages": [{"role": "user", "content": "hi"}],
        "stream": True, "stream_options": {"include_usage": True}, "x_vendor": {}}


def test_parse_matches_function_responses():
    body = {"contents": [
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [{"functionCall": {"id": "g-1", "name": "a", "args": {}}},
                                    {"function_call": {"name": "b", "args": {"x": 1}}}]},
        {"role": "model", "parts": [{"text": "pondering", "thought": True}]},  # no canonical message
        {"role": "user", "parts": [{"function_response": {"name": "b", "response": {"v": 2}}},
                                   {"functionResponse": {"id": "g-1", "name": "a", "response": {"output": "ok"}}},
                                   {"text": "thanks"}]},
    ]}
    messages = INGRESS.parse_request(body, model="models/m")["messages"]
    assert [m.get("tool_call_id") for m in messages] == [None, None, "call_1_1", "g-1", None]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "user"]
    assert messages[1]["tool_calls"][0]["id"] == "g-1"
    assert messages[-1] == {"role": "user", "content": "thanks"}


@pytest.mark.parametrize(("body", "model", "param"), [
    ({"contents": []}, "m", "contents"),
    ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "m", "contents[0].role"),
    ({"contents": [{"role": "user"}]}, "m", "contents[0]"),
    ({"contents": [{"parts": [{"text": "x"}]}]}, None, "model"),
    ({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"googleSearch": {}}]}, "m", "tools[0]"),
])
def test_parse_rejections(body, model, param):
    with pytest.raises(InvalidRequest) as exc:
        INGRESS.parse_request(body, model=model)
    assert exc.value.param == param


# --------------------------------------------------------------------------- #
# responses, streams and errors read back by the SDK
# --------------------------------------------------------------------------- #
def test_sdk_reads_rendered_response(serve):
    usage = {"prompt_tokens": 5, "completion_tokens": 13, "total_tokens": 18,
             "completion_tokens_details": {"reasoning_tokens": 10}}
    server = serve(scripted(completion({"content": "hello back"}, usage=usage)))
    client = server.client()
    r = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert r.text == "hello back"
    assert r.candidates[0].finish_reason == types.FinishReason.STOP and r.candidates[0].index == 0
    assert r.model_version == "gemini-2.5-flash" and r.response_id == "chatcmpl-abc"
    u = r.usage_metadata
    assert (u.prompt_token_count, u.candidates_token_count, u.thoughts_token_count, u.total_token_count) == (5, 3, 10, 18)


@pytest.mark.parametrize(("finish", "expected"), [("length", "MAX_TOKENS"), ("content_filter", "SAFETY")])
def test_sdk_reads_finish_reasons(serve, finish, expected):
    server = serve(scripted(completion({"content": "cut"}, finish)))
    client = server.client()
    assert client.models.generate_content(model="m", contents="x").candidates[0].finish_reason == expected


@pytest.mark.parametrize("usage", ["trailing", "none"])
def test_sdk_reads_rendered_stream(serve, usage):
    chunks = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({"content": "lo"}),
              chunk({}, "stop")]
    if usage == "trailing":  # the finish event waits for it
        chunks.append(chunk(None, usage={"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}))
    server = serve(scripted(chunks))
    client = server.client()
    parts = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    assert [p.text for p in parts] == ["Hel", "lo", ""]  # "" rather than None on the finish event
    last = parts[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP and last.model_version == "gemini-2.5-flash"
    if usage == "trailing":
        assert last.usage_metadata.total_token_count == 4
    else:
        assert last.usage_metadata is None


@pytest.mark.parametrize("stream", [False, True])
def test_sdk_reads_function_calls(serve, stream):
    if stream:
        answer: Any = [
            chunk({"role": "assistant", "content": None,
                   "tool_calls": [{"index": 0, **fn_call("call_A", "get_weather", "")}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
            chunk({"tool_calls": [{"index": 1, **fn_call("call_B", "now", "{}")}]}),
            chunk({}, "tool_calls", usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}),
        ]
    else:
        calls = [fn_call("call_A", "get_weather", '{"city": "Paris"}'), fn_call("call_B", "now", "{}")]
        answer = completion({"content": None, "tool_calls": calls}, "tool_calls")
    server = serve(scripted(answer))
    client = server.client()
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[
        types.FunctionDeclaration(name="get_weather"), types.FunctionDeclaration(name="now")])])
    if stream:
        responses = list(client.models.generate_content_stream(model="m", contents="x", config=config))
        got = [c for r in responses for c in r.function_calls or ()]
        assert responses[-1].candidates[0].finish_reason == types.FinishReason.STOP
    else:
        got = client.models.generate_content(model="m", contents="x", config=config).function_calls
    assert [(c.id, c.name, c.args) for c in got] == [("call_A", "get_weather", {"city": "Paris"}), ("call_B", "now", {})]


def test_errors_in_google_shape(serve):
    server = serve(scripted(UpstreamRateLimited("upstream x is rate limiting")))
    client = server.client()
    with pytest.raises(genai_errors.ClientError) as exc:
        client.models.generate_content(model="m", contents="x")
    assert (exc.value.code, exc.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert exc.value.message == "upstream x is rate limiting"
    search = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())])
    with pytest.raises(genai_errors.ClientError) as exc:  # the ingress' own validation
        client.models.generate_content(model="m", contents="x", config=search)
    assert (exc.value.code, exc.value.status) == (400, "INVALID_ARGUMENT")


def test_midstream_error_is_a_google_error_event(serve):
    server = serve(scripted([chunk({"role": "assistant", "content": ""}), chunk({"content": "partial"}),
                             UpstreamError("upstream x failed with HTTP 500")]))
    client = server.client()
    received = []
    with pytest.raises(genai_errors.ServerError) as exc:
        for part in client.models.generate_content_stream(model="m", contents="x"):
            received.append(part.text)
    assert received == ["partial"]
    assert (exc.value.code, exc.value.status) == (502, "UNAVAILABLE")
    raw = GeminiStreamEncoder("m").error(UpstreamError("boom"), "rid")
    assert raw.startswith(b'data: {"error":{"code":502') and raw.endswith(b"\r\n\r\n")


# --------------------------------------------------------------------------- #
# the whole path: SDK -> ingress -> adapter -> fake upstream -> adapter -> ingress -> SDK
# --------------------------------------------------------------------------- #
def lookup(arg: str) -> str:
    """Look something up."""
    return f"looked up {arg}"


def upstream(kind: str, fake_gemini: FakeGemini, fake_openai: Any) -> Backend:
    if kind == "gemini":
        return via_adapter(GeminiAdapter(), fake_gemini.base_url, "gemini", FAKE_GEMINI_API_KEY, "gemini-fake")
    return via_adapter(OpenAIAdapter(), fake_openai.base_url, "openai", FAKE_OPENAI_API_KEY, "fake-gpt-4o")


@pytest.mark.parametrize("kind", ["gemini", "openai"])
def test_sdk_through_ingress_and_adapter(serve, fake_gemini, fake_openai, kind):
    server = serve(upstream(kind, fake_gemini, fake_openai))
    client = server.client()
    r = client.models.generate_content(model="client-model", contents="hello there")
    assert r.text == "echo: hello there" and r.model_version == "client-model"
    u = r.usage_metadata
    assert u.total_token_count == u.prompt_token_count + u.candidates_token_count
    parts = list(client.models.generate_content_stream(model="client-model", contents="stream it"))
    assert "".join(p.text or "" for p in parts) == "echo: stream it"
    assert parts[-1].candidates[0].finish_reason == types.FinishReason.STOP and parts[-1].usage_metadata.total_token_count


@pytest.mark.parametrize("kind", ["gemini", "openai"])
def test_sdk_automatic_function_calling_through_ingress(serve, fake_gemini, fake_openai, kind):
    """The SDK runs the tool itself and sends a functionResponse matched by name only."""
    server = serve(upstream(kind, fake_gemini, fake_openai))
    client = server.client()
    config = types.GenerateContentConfig(tools=[lookup])
    r = client.models.generate_content(model="client-model", contents="look up", config=config)
    assert r.text == 'echo: {"result":"looked up value"}'
    first, second = server.canonical
    assert first["tools"][0]["function"]["name"] == "lookup"
    call = second["messages"][1]["tool_calls"][0]
    assert second["messages"][2] == {"role": "tool", "tool_call_id": call["id"], "content": '{"result":"looked up value"}'}
