"""OpenAI chat completions client -> OpenAI or OpenAI-compatible target: the client's body with
the model replaced, and the provider's answer and chunks with the model named as the client asked.

A stream needs the provider's usage for limits and cost: when the client did not ask for it
(`stream_options.include_usage`), the gateway asks, and takes the usage-only chunk (and the
`usage: null` of the other chunks) out again. The canonical format is this API's own, so the
guardrail filters run on the chunks as they are. Azure OpenAI keeps its adapter (deployment
URLs, content-filter chunks); its path already forwards every field.
"""

from __future__ import annotations

from typing import Any

import orjson

from aigw_config.config import ProviderConfig

from ..errors import GatewayError, UpstreamBadResponse
from ..ingress.openai import INGRESS
from ..limits.estimate import completion_allowance, estimate_chat_tokens, estimate_prompt_tokens
from ..providers.base import UpstreamRequest
from ..providers.openai import OpenAIAdapter, _upstream_message
from ..errors import upstream_status_error
from .base import Answer, NativeApi, NativeRequest, Piece, RawEvents, Slot, sse, substantial

PROVIDERS = frozenset({"openai", "openai-compatible"})
_ERRORS = OpenAIAdapter()
_JSON = {"content-type": "application/json", "accept": "application/json"}
_SSE = {"content-type": "application/json", "accept": "text/event-stream", "accept-encoding": "identity"}


def _asks_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


class OpenAINative:
    client_format = True

    def __init__(self, request: NativeRequest, stream_guard: Any = None) -> None:
        self.request = request
        self.stream_guard = stream_guard

    def chat_request(self, provider: ProviderConfig, api_key: str | None, model: str, request: NativeRequest,
                     stream: bool) -> UpstreamRequest:
        headers = {**(_SSE if stream else _JSON), **request.headers}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        if stream and not _asks_usage(request.body):
            options = {**(request.body.get("stream_options") or {}), "include_usage": True}
            body = orjson.dumps({**request.body, "model": model, "stream_options": options})
        else:
            body = request.body_bytes(model)
        return UpstreamRequest("POST", provider.base_url + "/chat/completions", headers, body)

    def chat_response(self, body: bytes, target: str, model: str) -> Answer:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(f"upstream {target} returned a response that is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise UpstreamBadResponse(f"upstream {target} returned a response without choices")
        out = Answer(data)
        out.raw = body
        return out

    def stream_translator(self, target: str, model: str) -> "OpenAITap":
        guard = self.stream_guard() if self.stream_guard is not None else None
        return OpenAITap(target, self.request.model, guard, strip_usage=not _asks_usage(self.request.body))

    def error_for(self, status: int, body: bytes, headers: dict[str, str], target: str) -> GatewayError:
        return _ERRORS.error_for(status, body, headers, target)


def usage_of(answer: dict[str, Any]) -> dict[str, Any] | None:
    usage = answer.get("usage")
    return usage if isinstance(usage, dict) else None


def map_model(answer: dict[str, Any], model: str) -> bool:
    if "model" not in answer or answer["model"] == model:
        return False
    answer["model"] = model
    return True


def _message_slots(message: Any, out: list[Slot]) -> None:
    if not isinstance(message, dict):
        return
    role = message.get("role") if isinstance(message.get("role"), str) else "assistant"
    content = message.get("content")
    if isinstance(content, str):
        out.append(Slot(message, "content", role))
    elif isinstance(content, list):
        out.extend(Slot(p, "text", role) for p in content
                   if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            out.append(Slot(function, "arguments", role, "json"))


def request_slots(body: dict[str, Any]) -> list[Slot]:
    out: list[Slot] = []
    for message in body.get("messages") or ():
        _message_slots(message, out)
    if isinstance(body.get("user"), str):
        out.append(Slot(body, "user", "user"))
    return out


def answer_slots(answer: dict[str, Any]) -> list[Slot]:
    out: list[Slot] = []
    for choice in answer.get("choices") or ():
        if isinstance(choice, dict):
            _message_slots(choice.get("message"), out)
    return out


def _substance(chunk: dict[str, Any]) -> bool:
    if chunk.get("usage"):
        return True
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {} if isinstance(choice, dict) else {}
        if delta.get("content") or delta.get("tool_calls") or choice.get("finish_reason"):
            return True
    return False


class OpenAITap:
    """OpenAI SSE as it came, except: the model named as the client asked, the usage the gateway
    asked for taken out again, and the guardrail filter over the chunks when a policy applies."""

    client_format = True
    substantial = staticmethod(substantial)

    def __init__(self, target: str, model: str, guard: Any = None, *, strip_usage: bool = False) -> None:
        self.target = target
        self.model = model
        self.guard = guard
        self.strip_usage = strip_usage
        self.events = RawEvents()
        self.usage: dict[str, Any] | None = None
        self.done = False

    def feed(self, data: bytes) -> list[Piece]:
        return [p for event in self.events.feed(data) for p in self._event(*event)]

    def finish(self) -> list[Piece]:
        out = [p for event in self.events.flush() for p in self._event(*event)]
        if not self.done:
            raise UpstreamBadResponse(f"upstream {self.target} ended the stream before [DONE]")
        return out

    def _event(self, raw: bytes, name: str | None, payload: bytes) -> list[Piece]:
        if not payload:
            return [Piece(raw)]
        if payload == b"[DONE]":
            self.done = True
            held = [self._chunk(c) for c in self.guard.flush()] if self.guard is not None else []
            return [*held, Piece(raw, substance=True)]
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(f"upstream {self.target} sent a stream event that is not JSON") from None
        if not isinstance(chunk, dict):
            raise UpstreamBadResponse(f"upstream {self.target} sent a stream event that is not an object")
        if "error" in chunk:
            return [Piece(raw, error=upstream_status_error(502, _upstream_message(payload), None, self.target))]
        substance = _substance(chunk)
        changed = map_model(chunk, self.model)
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        if self.strip_usage and "usage" in chunk:
            if not chunk.get("choices"):
                return [Piece(b"", substance=True)]  # the usage-only chunk the client did not ask for
            del chunk["usage"]
            changed = True
        if self.guard is not None:
            return [Piece(self._chunk(c).data, substance=substance) for c in self.guard.feed(chunk)] or [Piece(b"", substance=substance)]
        return [Piece(sse(None, orjson.dumps(chunk)) if changed else raw, substance=substance)]

    @staticmethod
    def _chunk(chunk: dict[str, Any]) -> Piece:
        return Piece(sse(None, orjson.dumps(chunk)), substance=True)


API = NativeApi(
    name="openai", providers=PROVIDERS, ingress=INGRESS, adapter=OpenAINative,
    request_slots=request_slots, answer_slots=answer_slots, usage_of=usage_of, map_model=map_model,
    estimate=estimate_chat_tokens, prompt_tokens=estimate_prompt_tokens, allowance=completion_allowance, count_body=lambda n: {"prompt_tokens": n},
)
