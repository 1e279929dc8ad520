"""A fake Ollama server for tests: its native API, in the style of ``FakeOpenAI``.

``FakeOllama`` reuses ``FakeOpenAI``'s machinery (real aiohttp server on 127.0.0.1 in a daemon
thread, ``script()`` / ``set_default()`` behaviours, model-name directives such as
``"fake~status=500"``, recorded requests) and speaks Ollama's wire format instead::

    with FakeOllama() as fake:
        httpx.post(fake.url + "/api/chat", json={"model": "fake", "messages": [...], "stream": False})

Endpoints
---------
``GET  /``               ``Ollama is running`` (never recorded)
``GET  /api/version``    ``{"version": ...}``
``GET  /api/tags``       the configured models
``POST /api/chat``       chat; streams NDJSON (``application/x-ndjson``) unless ``"stream": false``
                         -- like the real server, a request without ``stream`` streams.

Behaviour of ``/api/chat``, strict where the real server (Go, typed JSON decoding) is strict:
``content`` must be a string (an array of parts is a 400), tool-call ``arguments`` must be an
object, ``images`` base64 strings, ``options`` of the right types. An unknown model is a 404
``{"error": "model \\"x\\" not found, try pulling it first"}``. The answer is
``"echo: <last user text>"`` (or ``"echo: <tool result>"`` after a tool message); with tools the
first tool (no ``tool_choice`` natively) is called with ``{"arg": "value"}``.
``options.num_predict`` truncates the answer to that many words with ``done_reason: "length"``.
Usage: ``prompt_eval_count`` = words of all message contents, ``eval_count`` = words generated.
Streams: content lines (``default_chunks`` slices of the text), or one line with the complete
``tool_calls``, then the final ``done: true`` line with ``done_reason`` and the counts. Each line
counts as one chunk for ``disconnect_after_chunks`` / ``stall_after_chunks``.

``OllamaBehaviour`` adds ``stream_error`` (a ``{"error": ...}`` line after ``error_after``
lines, ending the stream, as Ollama does when a runner dies) and ``done_reason``.

This module also holds ``stream_frames`` / ``pre_response_faults``, the fault injection shared
with the Bedrock fake.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.openai_provider import (
    Behaviour,
    FakeOpenAI,
    RecordedRequest,
    _dumps,
    count_tokens,
    parse_model_directives,
    split_text,
)

__all__ = ["FakeOllama", "OllamaBehaviour", "behaviour_for", "pre_response_faults", "record", "stream_frames"]

OLLAMA_VERSION = "0.12.6"
NDJSON = "application/x-ndjson"


@dataclass
class OllamaBehaviour(Behaviour):
    stream_error: str | None = None
    error_after: int = 1
    done_reason: str | None = None


# --- shared with the Bedrock fake -------------------------------------------------------------

async def stream_frames(
    fake: FakeOpenAI, request: web.Request, frames: list[bytes], eff: Behaviour, status: int,
    headers: dict[str, str], content_type: str,
) -> web.StreamResponse:
    """Write ``frames`` one by one (each flushed), honouring delay / stall / disconnect."""
    resp = web.StreamResponse(status=status, headers={**headers, "content-type": content_type})
    delay = (eff.chunk_delay_ms or 0) / 1000.0
    try:
        await resp.prepare(request)
        for i, frame in enumerate(frames):
            if i and delay and await fake._sleep(delay):
                fake._drop(request)
                return resp
            if eff.disconnect_after_chunks is not None and i >= eff.disconnect_after_chunks:
                fake._drop(request)
                return resp
            if eff.stall_after_chunks is not None and i == eff.stall_after_chunks:
                if await fake._sleep(eff.stall_seconds or 0):
                    fake._drop(request)
                    return resp
            await resp.write(frame)
        await resp.write_eof()
    except ConnectionError:
        pass
    return resp


async def pre_response_faults(
    fake: FakeOpenAI, request: web.Request, eff: Behaviour, headers: dict[str, str],
    error: Callable[[int, str | None], web.StreamResponse],
    garbage: Callable[[], Awaitable[web.StreamResponse]],
) -> web.StreamResponse | None:
    """FakeOpenAI's order (stall -> disconnect -> custom body -> error status -> garbage)."""
    return await fake._pre_response_faults(request, eff, headers, error, garbage)


async def record(fake: FakeOpenAI, request: web.Request, path: str) -> tuple[bytes, Any]:
    body = await request.read()
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    fake._record(RecordedRequest(
        method=request.method, path=path, query=dict(request.query),
        headers={k.lower(): v for k, v in request.headers.items()}, body=body, json=parsed,
        received_at=time.monotonic(),
    ))
    return body, parsed


def behaviour_for(fake: FakeOpenAI, model: str) -> tuple[Behaviour, Behaviour | None]:
    """(effective behaviour, the scripted one with its subclass fields); ValueError on bad directives."""
    scripted = fake._next_behaviour()
    directives = parse_model_directives(model)[1] if "~" in model else Behaviour()
    eff = scripted.merged_over(directives) if scripted is not None else directives
    return eff, scripted


# --- the Ollama fake ----------------------------------------------------------------------------

def _type_error(value: Any, field: str, go_type: str) -> str:
    kind = {str: "string", list: "array", dict: "object", bool: "bool", int: "number", float: "number"}.get(type(value), "value")
    return f"json: cannot unmarshal {kind} into Go struct field {field} of type {go_type}"


class FakeOllama(FakeOpenAI):
    """Fake Ollama server.  See the module docstring."""

    def __init__(
        self, api_key: str | None = None, *, models: tuple[str, ...] = ("fake", "llama3.2:latest"), **kwargs: Any
    ) -> None:
        super().__init__(api_key, models=models, **kwargs)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (Ollama has no /v1 prefix natively)."""
        return self.url

    def _ollama_error(self, status: int, message: str | None, headers: dict[str, str] | None = None) -> web.Response:
        text = message or {429: "too many requests", 500: "an error was encountered while running the model"}.get(
            status, f"HTTP {status} (injected by FakeOllama)")
        return web.Response(body=_dumps({"error": text}), status=status, headers=headers, content_type="application/json")

    def _known(self, model: str) -> bool:
        return model in self.models or f"{model}:latest" in self.models

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if request.method in ("GET", "HEAD") and path == "/":
            return web.Response(text="Ollama is running")
        _, parsed = await record(self, request, path)
        headers = {"x-fake": "ollama"}
        if request.method != "POST" and not self._authorized(request):
            return self._ollama_error(401, "unauthorized", headers)
        if request.method == "GET" and path == "/api/version":
            return self._json({"version": OLLAMA_VERSION})
        if request.method == "GET" and path == "/api/tags":
            return self._json({"models": [self._model_entry(m) for m in self.models]})
        if request.method != "POST" or path != "/api/chat":
            return web.Response(status=404, text="404 page not found")
        model = parsed.get("model") if isinstance(parsed, dict) else None
        try:
            eff, scripted = behaviour_for(self, model if isinstance(model, str) else "")
        except ValueError as exc:
            return self._ollama_error(400, str(exc), headers)
        headers.update(eff.headers)
        streaming = not isinstance(parsed, dict) or parsed.get("stream", True) is not False
        fault = await pre_response_faults(
            self, request, eff, headers, lambda s, m: self._ollama_error(s, m, headers),
            lambda: self._ollama_garbage(request, streaming, eff, headers),
        )
        if fault is not None:
            return fault
        if not self._authorized(request):  # after injected faults, like FakeOpenAI
            return self._ollama_error(401, "unauthorized", headers)
        if not isinstance(parsed, dict):
            return self._ollama_error(400, "invalid character looking for beginning of value", headers)
        if not isinstance(model, str) or not model:
            return self._ollama_error(400, "model is required", headers)
        if not self._known(model.split("~", 1)[0]):
            return self._ollama_error(404, f'model "{model}" not found, try pulling it first', headers)
        problem = self._validate(parsed)
        if problem:
            return self._ollama_error(400, problem, headers)
        return await self._chat_native(request, parsed, eff, scripted, headers, streaming)

    def _model_entry(self, name: str) -> dict[str, Any]:
        return {
            "name": name, "model": name, "modified_at": "2025-01-01T00:00:00Z", "size": 1_000_000,
            "digest": "0" * 64, "details": {"format": "gguf", "family": "fake", "parameter_size": "1B", "quantization_level": "Q4_0"},
        }

    @staticmethod
    def _validate(body: dict[str, Any]) -> str | None:
        messages = body.get("messages")
        if messages is not None and not isinstance(messages, list):
            return _type_error(messages, "ChatRequest.messages", "[]api.Message")
        for m in messages or ():
            if not isinstance(m, dict):
                return _type_error(m, "ChatRequest.messages", "api.Message")
            if "content" in m and not isinstance(m["content"], str):
                return _type_error(m["content"], "Message.messages.content", "string")
            if m.get("role") not in ("system", "user", "assistant", "tool"):
                return f"invalid role: {m.get('role')}"
            for image in m.get("images") or ():
                try:
                    base64.b64decode(image, validate=True)
                except (binascii.Error, TypeError, ValueError):
                    return "illegal base64 data in image"
            for call in m.get("tool_calls") or ():
                args = (call.get("function") or {}).get("arguments") if isinstance(call, dict) else None
                if not isinstance(args, dict):
                    return _type_error(args, "ToolCallFunction.messages.tool_calls.function.arguments", "api.ToolCallFunctionArguments")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            return _type_error(options, "ChatRequest.options", "map[string]interface {}")
        for key, types in (("num_predict", int), ("seed", int), ("temperature", (int, float)), ("top_p", (int, float))):
            if key in options and (not isinstance(options[key], types) or isinstance(options[key], bool)):
                return f"option {key!r} must be of type {'integer' if types is int else 'float'}"
        if "stop" in options and not (isinstance(options["stop"], list) and all(isinstance(s, str) for s in options["stop"])):
            return "option 'stop' must be of type array"
        tools = body.get("tools")
        if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) and isinstance(t.get("function"), dict) for t in tools)):
            return _type_error(tools, "ChatRequest.tools", "api.Tools")
        return None

    async def _ollama_garbage(self, request: web.Request, streaming: bool, eff: Behaviour, headers: dict[str, str]) -> web.StreamResponse:
        if not streaming:
            return web.Response(body=b"<html>502 {{{ not json", status=eff.status or 200, headers={**headers, "content-type": "application/json"})
        frames = [b'{"model":"fake","message":{"role":"assistant","content":"a"},"done":false}\n', b"{this is not json\n"]
        return await stream_frames(self, request, frames, Behaviour(), eff.status or 200, headers, NDJSON)

    async def _chat_native(
        self, request: web.Request, body: dict[str, Any], eff: Behaviour, scripted: Behaviour | None,
        headers: dict[str, str], streaming: bool,
    ) -> web.StreamResponse:
        model = body["model"]
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        if last.get("role") == "tool":
            text = "echo: " + last.get("content", "")
        else:
            user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
            text = "echo: " + user.get("content", "")
        if eff.content is not None:
            text = eff.content
        done_reason = getattr(scripted, "done_reason", None) or "stop"
        num_predict = (body.get("options") or {}).get("num_predict")
        tools = body.get("tools") or []
        tool_calls = []
        if tools and last.get("role") != "tool":
            tool_calls = [{"function": {"name": tools[0]["function"].get("name", "tool"), "arguments": {"arg": "value"}}}]
            generated = 2
        else:
            if isinstance(num_predict, int) and 0 <= num_predict < count_tokens(text):
                text = " ".join(text.split()[:num_predict])
                done_reason = "length"
            generated = count_tokens(text)
        prompt_tokens = max(1, sum(count_tokens(m.get("content") or "") for m in messages))
        created_at = time.strftime("%Y-%m-%dT%H:%M:%S.123456789Z", time.gmtime())
        final = {
            "model": model, "created_at": created_at,
            "message": {"role": "assistant", "content": "" if streaming else ("" if tool_calls else text)},
            "done": True, "done_reason": done_reason, "total_duration": 123456789, "load_duration": 1234567,
            "prompt_eval_count": prompt_tokens, "prompt_eval_duration": 2345678, "eval_count": max(1, generated),
            "eval_duration": 3456789,
        }
        status = eff.status if eff.status is not None else 200
        if not streaming:
            if tool_calls:
                final["message"]["tool_calls"] = tool_calls
            payload = _dumps(final)
            if eff.disconnect_after_chunks is not None:
                return await self._truncated(request, payload, status, headers)
            return web.Response(body=payload, status=status, headers=headers, content_type="application/json")

        def line(message: dict[str, Any]) -> bytes:
            return _dumps({"model": model, "created_at": created_at, "message": message, "done": False}) + b"\n"

        lines: list[bytes] = []
        if tool_calls:
            lines.append(line({"role": "assistant", "content": "", "tool_calls": tool_calls}))
        else:
            n = eff.chunks if eff.chunks is not None else self.default_chunks
            lines.extend(line({"role": "assistant", "content": piece}) for piece in split_text(text, n))
        lines.append(_dumps(final) + b"\n")
        stream_error = getattr(scripted, "stream_error", None)
        if stream_error:
            after = getattr(scripted, "error_after", 1)
            lines = lines[:after] + [_dumps({"error": stream_error}) + b"\n"]
        return await stream_frames(self, request, lines, eff, status, headers, NDJSON)
