"""What every same-protocol passthrough shares: the request object the executor routes, raw SSE
framing, splicing the model name into raw JSON, and guardrails over the texts of a native body.

A `NativeRequest` is what a client sent in its own API (Anthropic messages, Gemini
generateContent, ...). For a target whose provider speaks that API the executor takes the
request's own adapter (`plan`), which sends the client's bytes (model and masked texts aside)
and hands the provider's answer back in the client's format; any other target gets the
canonical translation (`canonical()`), the path every request took before passthrough existed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from aigw_config.config import ProviderConfig

from ..errors import GatewayError, InvalidRequest, UpstreamResponseTooLarge
from ..ingress.base import Ingress
from ..providers import adapter_for
from ..streaming.sse import MAX_EVENT_BYTES, MAX_LINE_BYTES, line_too_long


class Answer(dict):
    """A parsed answer in the client's format that remembers the provider's bytes (forwarded
    as they came when nothing in them must change)."""

    raw: bytes = b""


@dataclass(frozen=True)
class NativeApi:
    """What the flow needs to know of one client API (one instance per API module)."""

    name: str  # also the header allow-list's key
    providers: frozenset[str]  # provider types that speak it natively
    ingress: Ingress  # translation for the other targets, and the error format
    adapter: Callable[[NativeRequest, Any], Any]  # (request, stream guard factory) -> executor adapter
    request_slots: Callable[[dict[str, Any]], list[Slot]]
    answer_slots: Callable[[dict[str, Any]], list[Slot]]
    usage_of: Callable[[dict[str, Any]], dict[str, Any] | None]
    map_model: Callable[[dict[str, Any], str], bool]
    estimate: Callable[[dict[str, Any], int], int]  # tokens to reserve
    prompt_tokens: Callable[[dict[str, Any]], int]  # the gateway's count estimate
    allowance: Callable[[dict[str, Any], int], int]  # estimate = prompt_tokens + allowance (one walk of the body)
    count_body: Callable[[int], dict[str, Any]]  # a count_tokens answer


@dataclass(slots=True)
class Piece:
    """Bytes for the client, cut at SSE event boundaries, with what the gateway learnt from them."""

    data: bytes
    substance: bool = False  # content, a finish or usage: the stream is committed to this target
    error: GatewayError | None = None  # an upstream error event (forwarded as it came)


class NativeStream(Protocol):
    """The StreamTranslator of a passthrough: upstream bytes in, `Piece`s for the client out."""

    client_format: bool
    usage: dict[str, Any] | None  # canonical usage, for limits and cost

    def feed(self, data: bytes) -> list[Piece]: ...

    def finish(self) -> list[Piece]: ...

    @staticmethod
    def substantial(piece: Piece) -> bool: ...


def substantial(piece: Piece) -> bool:
    return piece.substance or piece.error is not None


@dataclass
class NativeRequest:
    """One request in the client's own API. `body` is the parsed (possibly masked) JSON; `raw`
    the client's bytes, kept while nothing but the model name must change."""

    api: str  # "anthropic" | "gemini" | ...
    operation: str  # "chat" | "count_tokens" | "embeddings"
    body: dict[str, Any]
    raw: bytes | None
    model: str  # what the client asked for
    stream: bool = False
    headers: dict[str, str] = field(default_factory=dict)  # allow-listed client headers
    action: str = ""  # the API's method where the URL names it (Gemini: embedContent, ...)
    native: Callable[[ProviderConfig], Any | None] = lambda _p: None  # adapter for this provider, or None
    translate: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # body -> canonical chat request
    _canonical: dict[str, Any] | None = None

    def canonical(self) -> dict[str, Any]:
        if self.translate is None:
            raise InvalidRequest(f"{self.operation} cannot be translated for this target")
        if self._canonical is None:
            self._canonical = self.translate(self.body)
        return self._canonical

    def plan(self, provider: ProviderConfig) -> tuple[Any, Any]:
        """(adapter, payload) for one target, or (None, None) when it cannot serve the request."""
        native = self.native(provider)
        if native is not None:
            return native, self
        adapter = adapter_for(provider.provider)
        if adapter is None or self.translate is None:
            return None, None
        return adapter, self.canonical()

    def body_bytes(self, upstream_model: str | None) -> bytes:
        """The client's bytes with the model replaced (None: the body has no model field)."""
        if self.raw is not None:
            if upstream_model is None or upstream_model == self.body.get("model"):
                return self.raw
            spliced = splice_model(self.raw, self.body.get("model"), upstream_model)
            if spliced is not None:
                return spliced
        if upstream_model is None:
            return orjson.dumps(self.body)
        return orjson.dumps({**self.body, "model": upstream_model})


# --- raw JSON -----------------------------------------------------------------------------------

_MODEL_PAIR = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.)*)"')


def splice_model(raw: bytes, old: Any, new: str) -> bytes | None:
    """`raw` with the value of its `"model"` key replaced, every other byte kept; None when that
    key/value pair is not found exactly once (a nested object holds the same pair)."""
    if not isinstance(old, str):
        return None
    hits = []
    for match in _MODEL_PAIR.finditer(raw):
        try:
            if orjson.loads(b'"' + match.group(1) + b'"') == old:
                hits.append(match)
        except orjson.JSONDecodeError:
            continue
    if len(hits) != 1:
        return None
    start, end = hits[0].span(1)
    return raw[:start - 1] + orjson.dumps(new) + raw[end + 1:]


# --- raw SSE framing ----------------------------------------------------------------------------

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r|\n\r\n|\r\n\n")


class RawEvents:
    """Splits a byte stream into complete SSE events, each with its exact bytes (blank line
    included) and its data payload; an unfinished tail waits for more bytes."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[bytes, str | None, bytes]]:
        """(raw event bytes, event name, data) per complete event. A line or an event past the
        caps of streaming/sse.py is refused (502), never buffered without end."""
        held = len(self._buf)
        buf = self._buf + data if self._buf else data
        out = []
        start = 0
        scan = max(held - 3, 0)  # an event end can only be in (or straddle into) the new bytes
        while True:
            m = _EVENT_END.search(buf, max(start, scan))
            if m is None:
                break
            raw = buf[start:m.end()]
            name, payload = _fields(buf[start:m.start()])
            start = m.end()
            out.append((raw, name, payload if payload is not None else b""))  # comments: name None, no data
        self._buf = buf[start:]
        if len(self._buf) > MAX_LINE_BYTES:
            tail = self._buf
            if len(tail) - max(tail.rfind(b"\n"), tail.rfind(b"\r")) - 1 > MAX_LINE_BYTES:
                raise line_too_long(MAX_LINE_BYTES)
            if len(tail) > MAX_EVENT_BYTES:
                raise UpstreamResponseTooLarge(f"the upstream stream sent an event larger than {MAX_EVENT_BYTES} bytes")
        return out

    def flush(self) -> list[tuple[bytes, str | None, bytes]]:
        tail, self._buf = self._buf, b""
        if not tail.strip():
            return [(tail, None, b"")] if tail else []
        name, payload = _fields(tail)
        return [(tail, name, payload or b"")]


def _fields(block: bytes) -> tuple[str | None, bytes | None]:
    name: str | None = None
    data: list[bytes] = []
    for line in block.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", errors="replace")
    return name, (b"\n".join(data) if data else None)


def sse(name: str | None, data: bytes, crlf: bool = False) -> bytes:
    nl = b"\r\n" if crlf else b"\n"
    head = b"event: " + name.encode() + nl if name else b""
    return head + b"data: " + data + nl + nl


# --- guardrails over native bodies --------------------------------------------------------------

@dataclass(slots=True)
class Slot:
    """One text of a native body: `holder[key]` is a string ("content"), a JSON value whose
    serialisation is scanned as tool arguments ("arguments"), or a string of JSON ("json")."""

    holder: Any
    key: Any
    role: str
    kind: str = "content"

    def get(self) -> str:
        value = self.holder[self.key]
        return orjson.dumps(value).decode() if self.kind == "arguments" else value

    def set(self, text: str) -> None:
        if self.kind != "arguments":
            self.holder[self.key] = text
        else:
            try:
                self.holder[self.key] = orjson.loads(text)
            except orjson.JSONDecodeError:
                self.holder[self.key] = text


def _as_message(slot: Slot, text: str) -> dict[str, Any]:
    if slot.kind == "content":
        return {"role": slot.role, "content": text}
    return {"role": slot.role, "tool_calls": [{"type": "function", "function": {"name": "", "arguments": text}}]}


def _text_of(message: dict[str, Any], kind: str) -> str:
    if kind == "content":
        return message["content"]
    return message["tool_calls"][0]["function"]["arguments"]


def scan_slots(guard: Any, slots: list[Slot]) -> tuple[bool, Any, tuple[str, ...]]:
    """Input guardrails over the slots (masked in place): (changed, restore map, flags)."""
    texts = [slot.get() for slot in slots]
    result = guard.scan_request({"messages": [_as_message(s, t) for s, t in zip(slots, texts, strict=True)]})
    changed = False
    for slot, text, message in zip(slots, texts, result.request["messages"], strict=True):
        new = _text_of(message, slot.kind)
        if new != text:
            slot.set(new)
            changed = True
    return changed, result.restore, result.flags


def filter_slots(guard: Any, restore: Any, slots: list[Slot]) -> bool:
    """Output guardrails over the slots of an answer (rewritten in place); whether any changed."""
    if not slots:
        return False
    texts = [slot.get() for slot in slots]
    choices = [{"index": i, "message": _as_message(s, t), "finish_reason": "stop"}
               for i, (s, t) in enumerate(zip(slots, texts, strict=True))]
    out = guard.filter_response({"choices": choices}, restore)
    changed = False
    for slot, text, choice in zip(slots, texts, out["choices"], strict=True):
        new = _text_of(choice["message"], slot.kind)
        if new != text:
            slot.set(new)
            changed = True
    return changed


class StreamTexts:
    """A guardrail stream filter over native deltas: each (channel, sub) pair is a choice index
    and a content or tool-argument channel of the canonical chunk filter."""

    __slots__ = ("filter",)

    def __init__(self, stream_filter: Any) -> None:
        self.filter = stream_filter

    def _out(self, chunks: list[dict[str, Any]], index: int, arguments: bool) -> str:
        text = []
        for chunk in chunks:
            for choice in chunk.get("choices") or ():
                if choice.get("index") != index:
                    continue
                delta = choice.get("delta") or {}
                if arguments:
                    text.extend((c.get("function") or {}).get("arguments") or "" for c in delta.get("tool_calls") or ())
                elif isinstance(delta.get("content"), str):
                    text.append(delta["content"])
        return "".join(text)

    def text(self, index: int, text: str) -> str:
        chunk = {"id": "p", "choices": [{"index": index, "delta": {"content": text}, "finish_reason": None}]}
        return self._out(self.filter.feed(chunk), index, False)

    def arguments(self, index: int, text: str) -> str:
        call = {"index": 0, "function": {"arguments": text}}
        chunk = {"id": "p", "choices": [{"index": index, "delta": {"tool_calls": [call]}, "finish_reason": None}]}
        return self._out(self.filter.feed(chunk), index, True)

    def close(self, index: int) -> tuple[str, str]:
        """What the channels of `index` still hold: (text, tool arguments)."""
        chunk = {"id": "p", "choices": [{"index": index, "delta": {}, "finish_reason": "stop"}]}
        out = self.filter.feed(chunk)
        return self._out(out, index, False), self._out(out, index, True)
