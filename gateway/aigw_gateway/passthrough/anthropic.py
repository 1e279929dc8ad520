"""Anthropic Messages client -> Anthropic target: the client's body and the provider's answer as
they are (model name aside), plus the texts guardrails need and the usage limits need.

Served natively: `POST /v1/messages` (JSON and SSE) and `POST /v1/messages/count_tokens`.
Wire facts (URLs, version, usage mapping, error types) come from providers/anthropic.py.
"""

from __future__ import annotations

from typing import Any

import orjson

from aigw_config.config import ProviderConfig

from ..errors import GatewayError, UpstreamBadResponse, upstream_status_error
from ..limits.estimate import IMAGE_PART_TOKENS, OTHER_PART_TOKENS, text_tokens
from ..providers.anthropic import API_VERSION, ERROR_STATUS, AnthropicAdapter, anthropic_error_detail, canonical_usage, messages_url
from ..providers.base import UpstreamRequest
from ..ingress.anthropic import INGRESS
from .base import Answer, NativeApi, NativeRequest, Piece, RawEvents, Slot, StreamTexts, sse, substantial

PROVIDERS = frozenset({"anthropic"})
_ERRORS = AnthropicAdapter()


def _load(body: bytes, target: str) -> Answer:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamBadResponse(f"upstream {target} returned a response that is not JSON") from None
    if not isinstance(data, dict):
        raise UpstreamBadResponse(f"upstream {target} returned a response that is not an object")
    out = Answer(data)
    out.raw = body
    return out


class AnthropicNative:
    """The executor's adapter for one request on an Anthropic target (see passthrough/base.py)."""

    client_format = True

    def __init__(self, request: NativeRequest, stream_guard: Any = None) -> None:
        self.request = request
        self.stream_guard = stream_guard  # () -> a guardrail stream filter, or None

    def chat_request(self, provider: ProviderConfig, api_key: str | None, model: str, request: NativeRequest,
                     stream: bool) -> UpstreamRequest:
        headers = {"content-type": "application/json", "anthropic-version": API_VERSION,
                   "accept": "text/event-stream" if stream else "application/json", **request.headers}
        if stream:
            headers["accept-encoding"] = "identity"
        if api_key:
            headers["x-api-key"] = api_key
        url = messages_url(provider.base_url)
        if request.operation == "count_tokens":
            url += "/count_tokens"
        return UpstreamRequest("POST", url, headers, request.body_bytes(model))

    def chat_response(self, body: bytes, target: str, model: str) -> Answer:
        data = _load(body, target)
        if self.request.operation == "count_tokens":
            if not isinstance(data.get("input_tokens"), int):
                raise UpstreamBadResponse(f"upstream {target} returned a token count without input_tokens")
        elif data.get("type") != "message" or not isinstance(data.get("content"), list):
            raise UpstreamBadResponse(f"upstream {target} returned a response that is not a message")
        return data

    def stream_translator(self, target: str, model: str) -> "AnthropicTap":
        factory = self.stream_guard
        return AnthropicTap(target, self.request.model, factory() if factory is not None else None)

    def error_for(self, status: int, body: bytes, headers: dict[str, str], target: str) -> GatewayError:
        return _ERRORS.error_for(status, body, headers, target)


def usage_of(answer: dict[str, Any]) -> dict[str, Any] | None:
    usage = answer.get("usage")
    return canonical_usage(usage) if isinstance(usage, dict) else None


# --- texts for guardrails -----------------------------------------------------------------------

def _block_slots(blocks: Any, role: str, out: list[Slot]) -> None:
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            out.append(Slot(block, "text", role))
        elif kind == "tool_use" and "input" in block:
            out.append(Slot(block, "input", "assistant", "arguments"))
        elif kind == "tool_result":
            content = block.get("content")
            if isinstance(content, str):
                out.append(Slot(block, "content", "tool"))
            else:
                _block_slots(content, "tool", out)


def request_slots(body: dict[str, Any]) -> list[Slot]:
    """Every text of a Messages request: system, turns (system turns too), tool calls and results."""
    out: list[Slot] = []
    system = body.get("system")
    if isinstance(system, str):
        out.append(Slot(body, "system", "system"))
    else:
        _block_slots(system, "system", out)
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        role = message.get("role") if isinstance(message.get("role"), str) else "user"
        if isinstance(message.get("content"), str):
            out.append(Slot(message, "content", role))
        else:
            _block_slots(message.get("content"), role, out)
    return out


def answer_slots(answer: dict[str, Any]) -> list[Slot]:
    out: list[Slot] = []
    _block_slots(answer.get("content"), "assistant", out)
    return out


def map_model(answer: dict[str, Any], model: str) -> bool:
    """Name the model the client asked for; whether the answer changed."""
    if answer.get("model") == model or "model" not in answer:
        return False
    answer["model"] = model
    return True


# --- token estimate -----------------------------------------------------------------------------

def _tokens(content: Any) -> int:
    if isinstance(content, str):
        return text_tokens(content)
    total = 0
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            total += text_tokens(block["text"])
        elif kind == "image":
            total += IMAGE_PART_TOKENS
        elif kind == "document":
            total += OTHER_PART_TOKENS
        elif kind == "tool_result":
            total += 4 + _tokens(block.get("content"))
        else:
            total += (len(orjson.dumps(block)) + 3) >> 2
    return total


def prompt_tokens(body: dict[str, Any]) -> int:
    """Estimated input tokens of a Messages request (images and documents a fixed amount)."""
    total = 3 + _tokens(body.get("system"))
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            total += 4 + _tokens(message.get("content"))
    if body.get("tools"):
        total += (len(orjson.dumps(body["tools"])) + 3) >> 2
    return total


def allowance(body: dict[str, Any], default_max_tokens: int) -> int:
    cap = body.get("max_tokens")
    return cap if type(cap) is int and cap > 0 else default_max_tokens


def estimate(body: dict[str, Any], default_max_tokens: int) -> int:
    return prompt_tokens(body) + allowance(body, default_max_tokens)


# --- the stream ---------------------------------------------------------------------------------

class AnthropicTap:
    """Anthropic SSE as it came, event by event; reads usage, names the client's model in
    message_start, and runs the guardrail stream filter over text and tool-input deltas."""

    client_format = True
    substantial = staticmethod(substantial)

    def __init__(self, target: str, model: str, guard: Any = None) -> None:
        self.target = target
        self.model = model
        self.events = RawEvents()
        self.texts = StreamTexts(guard) if guard is not None else None
        self.raw_usage: dict[str, Any] = {}
        self.started = self.done = False
        self.tool_blocks: set[int] = set()

    @property
    def usage(self) -> dict[str, Any] | None:
        return canonical_usage(self.raw_usage) if self.raw_usage else None

    def feed(self, data: bytes) -> list[Piece]:
        return [p for event in self.events.feed(data) for p in self._event(*event)]

    def finish(self) -> list[Piece]:
        out = [p for event in self.events.flush() for p in self._event(*event)]
        if not self.done:
            raise UpstreamBadResponse(f"upstream {self.target} ended the stream before message_stop")
        return out

    def _bad(self, what: str) -> UpstreamBadResponse:
        return UpstreamBadResponse(f"upstream {self.target} sent {what}")

    def _event(self, raw: bytes, name: str | None, payload: bytes) -> list[Piece]:
        if not payload:
            return [Piece(raw)]  # a comment or keep-alive
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise self._bad("a stream event that is not JSON") from None
        if not isinstance(data, dict):
            raise self._bad("a stream event that is not an object")
        kind = data.get("type") or name
        if kind == "error":
            err_type, message = anthropic_error_detail(payload)
            err = upstream_status_error(ERROR_STATUS.get(err_type or "", 502), message, None, self.target)
            return [Piece(raw, error=err)]
        if kind == "message_start":
            message = data.get("message") or {}
            self.started = True
            self.raw_usage.update(message.get("usage") or {})
            if isinstance(message, dict) and map_model(message, self.model):
                raw = sse(name, orjson.dumps(data))
            return [Piece(raw)]
        if not self.started and kind != "ping":
            raise self._bad(f"{kind!r} before message_start")
        if kind == "message_delta":
            # cumulative counts: they override what message_start said
            self.raw_usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            return [Piece(raw, substance=True)]
        if kind == "message_stop":
            self.done = True
            return [Piece(raw, substance=True)]
        if self.texts is None or kind not in ("content_block_start", "content_block_delta", "content_block_stop"):
            return [Piece(raw, substance=kind == "content_block_delta")]
        return self._guarded(raw, name, kind, data)

    def _guarded(self, raw: bytes, name: str | None, kind: str, data: dict[str, Any]) -> list[Piece]:
        texts = self.texts
        assert texts is not None
        index = data.get("index", 0)
        if kind == "content_block_start":
            if (data.get("content_block") or {}).get("type") == "tool_use":
                self.tool_blocks.add(index)
            return [Piece(raw)]
        if kind == "content_block_stop":
            text, arguments = texts.close(index)
            out = []
            if text:
                out.append(self._delta(name, index, {"type": "text_delta", "text": text}))
            if arguments:
                out.append(self._delta(name, index, {"type": "input_json_delta", "partial_json": arguments}))
            return [*out, Piece(raw)]
        delta = data.get("delta") or {}
        if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
            key, new = "text", texts.text(index, delta["text"])
        elif delta.get("type") == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            key, new = "partial_json", texts.arguments(index, delta["partial_json"])
        else:
            return [Piece(raw, substance=True)]  # thinking, signatures, citations: not answer text
        if new == delta[key]:
            return [Piece(raw, substance=True)]
        if not new:
            return []  # held back until the filter knows more
        return [self._delta("content_block_delta", index, {**delta, key: new})]

    @staticmethod
    def _delta(name: str | None, index: int, delta: dict[str, Any]) -> Piece:
        body = {"type": "content_block_delta", "index": index, "delta": delta}
        return Piece(sse("content_block_delta", orjson.dumps(body)), substance=True)


API = NativeApi(
    name="anthropic", providers=PROVIDERS, ingress=INGRESS, adapter=AnthropicNative,
    request_slots=request_slots, answer_slots=answer_slots, usage_of=usage_of, map_model=map_model,
    estimate=estimate, prompt_tokens=prompt_tokens, allowance=allowance, count_body=lambda n: {"input_tokens": n},
)
