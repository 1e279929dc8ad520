"""A fake Anthropic Messages API for tests: a real HTTP server speaking Anthropic's wire format.

``FakeAnthropic`` reuses ``FakeOpenAI``'s machinery (daemon-thread aiohttp server on 127.0.0.1,
recorded requests, ``script()`` / ``set_default()`` behaviours, model-name directives) and
answers in Anthropic's format instead::

    with FakeAnthropic(api_key="sk-ant-upstream-test") as fake:
        client = anthropic.Anthropic(base_url=fake.base_url, api_key="sk-ant-upstream-test")
        client.messages.create(model="claude-fake", max_tokens=64, messages=[...])

Endpoints
---------
``POST /v1/messages``               a ``message``, or its SSE event sequence with ``"stream": true``
``POST /v1/messages/count_tokens``  ``{"input_tokens": n}``
``GET  /v1/models``                 model list;  ``GET /health`` 200 (never recorded)

Checks, as the real API makes them (400 ``invalid_request_error`` unless noted): the API key as
``x-api-key`` or ``Authorization: Bearer`` (recent SDKs send Bearer; 401 ``authentication_error``),
the ``anthropic-version`` header, ``model``, ``max_tokens`` (required), ``messages`` (user and
assistant roles only, no empty text blocks, valid image sources), ``temperature`` in 0..1,
``tools`` (name + input_schema), ``tool_choice`` (naming a known tool), and tool pairing: every
``tool_use`` block must be answered by ``tool_result`` blocks in the very next message, and every
``tool_result`` must answer a ``tool_use`` of the message before. (Stricter than the real API in
one way: consecutive same-role turns are not merged before the pairing check.)

Answers
-------
* Text ``"echo: <text of the last user turn>"`` (text blocks joined with a space); if that turn
  holds ``tool_result`` blocks: ``"echo: <their text>"``.
* With ``tools`` (and ``tool_choice`` not ``none``, and no tool results in the last user turn): a
  ``tool_use`` block for the first tool (or the forced one) with input ``{"arg": "value"}``,
  stop_reason ``tool_use``; ``AnthropicBehaviour(tool_preamble="...")`` puts a text block first.
* ``stop_sequences``: the text is cut before the first one found, stop_reason ``stop_sequence``.
  ``max_tokens`` smaller than the answer's word count: cut to that many words, ``max_tokens``.
* Usage: input_tokens = words of system + all text (min 1); output_tokens = words generated
  (for a tool call: words of the input JSON; min 1); cache tokens from the behaviour (default 0).
* Streaming: message_start, then per content block content_block_start, (a ping after the first
  start), deltas (text: N = ``chunks`` slices; tool input: an empty ``partial_json`` then N
  slices), content_block_stop; then message_delta and message_stop. Every SSE event counts for
  ``disconnect_after`` / ``stall_after`` / ``error_after``.

Misbehaving: every ``Behaviour`` field and model directive of ``FakeOpenAI`` works here (status
-> Anthropic error body, e.g. 529 ``overloaded_error``; stall; garbage; disconnect; disconnect
after N events), plus ``AnthropicBehaviour(stream_error_after=n, stream_error_type=...)`` /
``"claude-fake~error_after=2"``: after n events send an ``event: error`` (``overloaded_error`` by
default) and end the stream, as Anthropic does when it is overloaded mid-stream.
Shapes by directive too: ``~no_tools=1`` answers text although tools are offered (what an agent
such as Claude Code needs to finish), ``~cache_read=N`` / ``~cache_write=N`` set the cache usage.
With an ``anthropic-beta`` header, ``system`` turns inside ``messages`` are accepted.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, fields
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

__all__ = ["AnthropicBehaviour", "FakeAnthropic", "RecordedRequest", "anthropic_error_body", "parse_directives"]

DEFAULT_MODELS = ("claude-fake", "claude-sonnet-4-5")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")

ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
    504: "timeout_error", 529: "overloaded_error",
}
ERROR_MESSAGES = {"overloaded_error": "Overloaded", "rate_limit_error": "Number of requests has exceeded your rate limit",
                  "api_error": "Internal server error"}


@dataclass
class AnthropicBehaviour(Behaviour):
    """``Behaviour`` plus Anthropic-only faults and shapes (None: normal)."""

    stream_error_after: int | None = None  # streaming: n events, then an `error` event, then EOF
    stream_error_type: str | None = None  # default overloaded_error
    tool_preamble: str | None = None  # a text block before the tool_use block
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    no_tools: bool = False  # answer with text even when the request offers tools (agents: Claude Code)


_OWN_DIRECTIVES = {"error_after": ("stream_error_after", int), "error_type": ("stream_error_type", str),
                   "no_tools": ("no_tools", lambda v: v.strip().lower() in ("1", "true", "yes", "")),
                   "cache_read": ("cache_read_input_tokens", int), "cache_write": ("cache_creation_input_tokens", int)}


def parse_directives(model: str) -> tuple[str, AnthropicBehaviour]:
    """``"claude-fake~status=529~error_after=2"`` -> ("claude-fake", behaviour); ValueError on typos."""
    base, *parts = model.split("~")
    own = [p for p in parts if p.partition("=")[0].strip().lower() in _OWN_DIRECTIVES]
    _, common = parse_model_directives("~".join([base, *(p for p in parts if p not in own)]))
    out = AnthropicBehaviour(**{f.name: getattr(common, f.name) for f in fields(Behaviour)})
    for part in own:
        key, _, raw = part.partition("=")
        name, conv = _OWN_DIRECTIVES[key.strip().lower()]
        try:
            setattr(out, name, conv(raw))
        except ValueError as exc:
            raise ValueError(f"bad value for fake model directive {key!r}: {exc}") from None
    return base, out


def _merged(scripted: Behaviour | None, base: AnthropicBehaviour) -> AnthropicBehaviour:
    if scripted is None:
        return base
    for f in fields(scripted):
        value = getattr(scripted, f.name)
        if f.name == "headers":
            base.headers = {**base.headers, **value}
        elif value is not None and value is not False:
            setattr(base, f.name, value)
    return base


def anthropic_error_body(status: int, message: str | None = None, request_id: str | None = None) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    message = message or ERROR_MESSAGES.get(kind, f"HTTP {status} (injected by FakeAnthropic)")
    body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    if request_id:
        body["request_id"] = request_id
    return body


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: ".encode() + _dumps({"type": kind, **data}) + b"\n\n"


def _texts(content: Any, *, results: bool = False) -> list[str]:
    """Texts of a content (string or blocks); `results`: only those inside tool_result blocks."""
    if isinstance(content, str):
        return [] if results else [content]
    out: list[str] = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and not results:
            out.append(block.get("text", ""))
        elif block.get("type") == "tool_result" and results:
            inner = block.get("content", "")
            out.extend(_texts(inner) if isinstance(inner, (str, list)) else [])
    return out


def _known_version(version: str | None) -> bool:
    """A dated version the API knows: 2023-01-01, 2023-06-01, or a later date (newer SDKs send those)."""
    if not version or len(version) != 10 or version[4] != "-" or version[7] != "-":
        return False
    return version.replace("-", "").isdigit() and version >= "2023-01-01"


class _Invalid(Exception):
    pass


def _check_block(block: Any, role: str, where: str) -> None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        if not isinstance(block.get("text"), str) or not block["text"].strip():
            raise _Invalid(f"{where}: text content blocks must contain non-whitespace text")
    elif kind == "image":
        src = block.get("source") or {}
        ok = (src.get("type") == "base64" and src.get("media_type") in IMAGE_TYPES and isinstance(src.get("data"), str)) or (
            src.get("type") == "url" and isinstance(src.get("url"), str))
        if not ok:
            raise _Invalid(f"{where}.source: invalid image source")
    elif kind == "tool_use" and role == "assistant":
        if not (isinstance(block.get("id"), str) and isinstance(block.get("name"), str) and isinstance(block.get("input"), dict)):
            raise _Invalid(f"{where}: tool_use blocks need id, name and an input object")
    elif kind == "tool_result" and role == "user":
        if not isinstance(block.get("tool_use_id"), str):
            raise _Invalid(f"{where}.tool_use_id: Field required")
    elif kind not in ("document", "thinking", "redacted_thinking"):
        raise _Invalid(f"{where}.type: unexpected content block type {kind!r} in a {role} message")


def validate(body: Any, betas: str = "") -> None:
    """Raise _Invalid with the real API's style of message for what it would refuse. With any
    `anthropic-beta` header, `system` turns inside `messages` are accepted (Claude Code sends them)."""
    if not isinstance(body, dict):
        raise _Invalid("request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _Invalid("model: Field required")
    mt = body.get("max_tokens")
    if isinstance(mt, bool) or not isinstance(mt, int) or mt < 1:
        raise _Invalid("max_tokens: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _Invalid("messages: Field required")
    t = body.get("temperature")
    if t is not None and (not isinstance(t, (int, float)) or not 0 <= t <= 1):
        raise _Invalid("temperature: range: 0..1")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        for k, block in enumerate(system if isinstance(system, list) else [None]):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise _Invalid(f"system.{k}: Input should be a text block")
    pending: list[str] = []  # tool_use ids the next message must answer
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role == "system" and betas:
            if not _texts(msg.get("content")):
                raise _Invalid(f"messages.{i}: system messages need text content")
            continue
        if role == "system":
            raise _Invalid('messages: Unexpected role "system". The Messages API accepts a top-level `system` '
                           'parameter, not "system" as an input message role.')
        if role not in ("user", "assistant"):
            raise _Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = msg.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or (not blocks and i != len(messages) - 1):
            raise _Invalid(f"messages.{i}: all messages must have non-empty content except for the optional final assistant message")
        for j, block in enumerate(blocks):
            if not (isinstance(content, str) and i == len(messages) - 1 and role == "assistant"):
                _check_block(block, role, f"messages.{i}.content.{j}")
        answered = [b["tool_use_id"] for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        unexpected = [a for a in answered if a not in pending]
        if unexpected:
            raise _Invalid(f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: {', '.join(unexpected)}. "
                           "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")
        missing = [p for p in pending if p not in answered]
        if missing:
            raise _Invalid(f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                           f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.")
        pending = [b["id"] for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]
    names = []
    for k, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise _Invalid(f"tools.{k}.name: Field required")
        if tool.get("type") in (None, "custom") and not isinstance(tool.get("input_schema"), dict):
            raise _Invalid(f"tools.{k}.custom.input_schema: Field required")
        names.append(tool["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
            raise _Invalid("tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'")
        if choice["type"] == "tool" and choice.get("name") not in names:
            raise _Invalid(f"tool_choice: tool {choice.get('name')!r} not found in tools")
    stop = body.get("stop_sequences")
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) for s in stop)):
        raise _Invalid("stop_sequences: Input should be a valid list of strings")


class FakeAnthropic(FakeOpenAI):
    """Fake Anthropic provider.  See the module docstring."""

    def __init__(self, api_key: str | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 models: tuple[str, ...] | list[str] = DEFAULT_MODELS, default_chunks: int = 3) -> None:
        super().__init__(api_key, host=host, port=port, models=models, default_chunks=default_chunks)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (what an Anthropic client wants: it adds /v1/messages)."""
        return self.url

    def __repr__(self) -> str:
        return f"<FakeAnthropic port={self.port} running={self.running} requests={len(self.requests)}>"

    def _error(self, status: int, message: str | None = None, headers: dict[str, str] | None = None, **_: Any) -> web.Response:
        rid = (headers or {}).get("request-id")
        return self._json(anthropic_error_body(status, message, rid), status=status, headers=headers)

    def _authorized(self, request: web.Request) -> bool:
        if self.api_key is None:
            return True
        return request.headers.get("x-api-key") == self.api_key or request.headers.get("authorization") == f"Bearer {self.api_key}"

    def _unauthorized(self, request: web.Request, headers: dict[str, str]) -> web.Response:
        given = request.headers.get("x-api-key") or request.headers.get("authorization")
        return self._error(401, "invalid x-api-key" if given else "x-api-key header is required", headers)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in ("/health", "/healthz"):
            return self._json({"status": "ok"})
        body = await request.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        self._record(RecordedRequest(request.method, path, dict(request.query), {k.lower(): v for k, v in request.headers.items()},
                                     body, parsed, time.monotonic()))
        headers = {"request-id": self._next_id("req_")}
        if request.method != "POST":
            if not self._authorized(request):
                return self._unauthorized(request, headers)
            if request.method == "GET" and path == "/v1/models":
                data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"} for m in self.models]
                return self._json({"data": data, "has_more": False, "first_id": self.models[0], "last_id": self.models[-1]}, headers=headers)
            return self._error(404, f"Not found: {request.method} {path}", headers)

        scripted = self._next_behaviour()
        model = parsed.get("model") if isinstance(parsed, dict) else None
        try:
            directives = parse_directives(model)[1] if isinstance(model, str) and "~" in model else AnthropicBehaviour()
        except ValueError as exc:
            return self._error(400, str(exc), headers)
        eff = _merged(scripted, directives)
        headers.update(eff.headers)
        streaming = isinstance(parsed, dict) and parsed.get("stream") is True
        fault = await self._pre_response_faults(
            request, eff, headers, lambda status, msg: self._error(status, msg, headers),
            lambda: self._garbage_anthropic(request, streaming, eff, headers))
        if fault is not None:
            return fault

        if not self._authorized(request):
            return self._unauthorized(request, headers)
        given = request.headers.get("anthropic-version")
        if not _known_version(given):
            return self._error(400, f"anthropic-version: invalid version {given}" if given else "anthropic-version: header is required", headers)
        if path == "/v1/messages/count_tokens":
            return self._json({"input_tokens": self._input_tokens(parsed if isinstance(parsed, dict) else {})}, headers=headers)
        if path != "/v1/messages":
            return self._error(404, f"Not found: POST {path}", headers)
        try:
            validate(parsed, request.headers.get("anthropic-beta", ""))
        except _Invalid as exc:
            return self._error(400, str(exc), headers)
        return await self._messages(request, parsed, eff, headers)

    async def _garbage_anthropic(self, request: web.Request, streaming: bool, eff: Behaviour, headers: dict[str, str]) -> web.StreamResponse:
        if not streaming:
            return web.Response(body=b"<html><body>502 Bad Gateway {{{ this is not JSON", status=eff.status or 200,
                                headers={**headers, "content-type": "application/json"})
        events = [b"event: message_start\ndata: {this is not json\n\n"]
        return await self._stream(request, events, Behaviour(), eff.status or 200, headers)

    @staticmethod
    def _input_tokens(body: dict[str, Any]) -> int:
        system = body.get("system")
        words = count_tokens(" ".join(_texts(system) if system else []))
        for msg in body.get("messages") or ():
            if isinstance(msg, dict):
                content = msg.get("content")
                words += count_tokens(" ".join(_texts(content) + _texts(content, results=True)))
        return max(1, words)

    def _answer(self, body: dict[str, Any], eff: AnthropicBehaviour) -> tuple[list[dict[str, Any]], str, str | None]:
        """(content blocks, stop_reason, stop_sequence)."""
        last_user = next((m for m in reversed(body["messages"]) if m.get("role") == "user"), {"content": ""})
        if not isinstance(last_user.get("content"), (str, list)):
            last_user = {"content": ""}
        results = _texts(last_user.get("content"), results=True)
        text = "echo: " + " ".join(results or _texts(last_user.get("content")))
        if eff.content is not None:
            text = eff.content
        tools, choice = body.get("tools") or [], body.get("tool_choice") or {}
        if tools and choice.get("type") != "none" and not results and not eff.no_tools:
            name = choice.get("name") if choice.get("type") == "tool" else tools[0]["name"]
            blocks = [{"type": "text", "text": eff.tool_preamble}] if eff.tool_preamble else []
            blocks.append({"type": "tool_use", "id": self._next_id("toolu_"), "name": name, "input": {"arg": "value"}})
            return blocks, "tool_use", None
        stop_reason, stop_sequence = "end_turn", None
        hits = [(text.find(s), s) for s in body.get("stop_sequences") or () if s and s in text]
        if hits:
            at, stop_sequence = min(hits)
            text, stop_reason = text[:at], "stop_sequence"
        elif count_tokens(text) > body["max_tokens"]:
            text, stop_reason = " ".join(text.split()[: body["max_tokens"]]), "max_tokens"
        return [{"type": "text", "text": text}], stop_reason, stop_sequence

    async def _messages(self, request: web.Request, body: dict[str, Any], eff: AnthropicBehaviour, headers: dict[str, str]) -> web.StreamResponse:
        blocks, stop_reason, stop_sequence = self._answer(body, eff)
        generated = " ".join(b["text"] if b["type"] == "text" else json.dumps(b["input"]) for b in blocks)
        usage = {
            "input_tokens": self._input_tokens(body),
            "cache_creation_input_tokens": eff.cache_creation_input_tokens or 0,
            "cache_read_input_tokens": eff.cache_read_input_tokens or 0,
            "output_tokens": max(1, count_tokens(generated)),
            "service_tier": "standard",
        }
        message = {"id": self._next_id("msg_"), "type": "message", "role": "assistant", "model": body["model"],
                   "content": blocks, "stop_reason": stop_reason, "stop_sequence": stop_sequence, "usage": usage}
        status = eff.status if eff.status is not None else 200
        if body.get("stream") is not True:
            if eff.disconnect_after_chunks is not None:
                return await self._truncated(request, _dumps(message), status, headers)
            return self._json(message, status=status, headers=headers)

        n = eff.chunks if eff.chunks is not None else self.default_chunks
        start = {**message, "content": [], "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}
        events = [_sse("message_start", {"message": start})]
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                events.append(_sse("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}}))
                deltas = [{"type": "text_delta", "text": piece} for piece in split_text(block["text"], n)]
            else:
                events.append(_sse("content_block_start", {"index": index, "content_block": {**block, "input": {}}}))
                pieces = ["", *split_text(json.dumps(block["input"]), n)]
                deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
            if index == 0:
                events.append(_sse("ping", {}))
            events.extend(_sse("content_block_delta", {"index": index, "delta": d}) for d in deltas)
            events.append(_sse("content_block_stop", {"index": index}))
        events.append(_sse("message_delta", {"delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                                             "usage": {"output_tokens": usage["output_tokens"]}}))
        events.append(_sse("message_stop", {}))
        if eff.stream_error_after is not None:
            kind = eff.stream_error_type or "overloaded_error"
            error = {"type": "error", "error": {"type": kind, "message": ERROR_MESSAGES.get(kind, kind)}}
            events = [*events[: eff.stream_error_after], b"event: error\ndata: " + _dumps(error) + b"\n\n"]
        return await self._stream(request, events, eff, status, headers)


def main(argv: list[str] | None = None) -> int:
    """python -m tests.fakes.anthropic_provider [--port 8082]"""
    from tests.fakes.openai_provider import serve_standalone

    return serve_standalone(FakeAnthropic, "Anthropic", 8082, argv)


if __name__ == "__main__":
    raise SystemExit(main())
