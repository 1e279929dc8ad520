"""The Responses API spoken natively: OpenAI (`{base}/responses`) and Azure OpenAI
(`{base}/openai/responses?api-version=…`, model = deployment).

The client's body goes upstream as it came, with only the model name (and a previous response id,
see responses_ids.py) replaced; the answer comes back as it came. Parsed only for what the gateway
needs: usage (limits and cost) and, in a stream, which events carry substance (so a stalled or
broken stream still fails over before the first byte reaches the client) and whether it ended
properly (`response.completed`, `.incomplete` or `.failed`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from aigw_config.config import ProviderConfig

from ..errors import GatewayError, NotFound, UpstreamBadResponse, upstream_status_error
from ..ingress.responses import canonical_usage
from ..streaming.sse import SSEParser
from .base import UpstreamRequest
from .openai import OpenAIAdapter

NATIVE_PROVIDERS = frozenset({"openai", "azure-openai"})
_OPENAI = OpenAIAdapter()
_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def speaks_responses(provider: ProviderConfig) -> bool:
    return provider.provider in NATIVE_PROVIDERS


def _headers(provider: ProviderConfig, api_key: str | None, stream: bool) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
    if stream:
        headers["accept-encoding"] = "identity"
    if api_key:
        if provider.provider == "azure-openai":
            headers["api-key"] = api_key
        else:
            headers["authorization"] = f"Bearer {api_key}"
    return headers


def responses_url(provider: ProviderConfig, suffix: str = "") -> str:
    if provider.provider == "azure-openai":
        base = provider.base_url.rstrip("/")
        if not base.endswith("/openai"):
            base += "/openai"
        return f"{base}/responses{suffix}?api-version={quote(provider.api_version or '', safe='')}"
    return f"{provider.base_url}/responses{suffix}"


def create_request(provider: ProviderConfig, api_key: str | None, model: str, body: dict[str, Any],
                   stream: bool) -> UpstreamRequest:
    return UpstreamRequest("POST", responses_url(provider), _headers(provider, api_key, stream),
                           orjson.dumps({**body, "model": model}))


def item_request(provider: ProviderConfig, api_key: str | None, method: str, upstream_id: str, sub: str = "",
                 query: str = "") -> UpstreamRequest:
    """GET or DELETE of one stored response at the provider (`sub`: e.g. "/input_items")."""
    url = responses_url(provider, "/" + quote(upstream_id, safe="") + sub)
    if query:
        url += ("&" if "?" in url else "?") + query
    return UpstreamRequest(method, url, _headers(provider, api_key, False), b"")


def parse_response(body: bytes, target: str, model: str) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamBadResponse(f"upstream {target} returned a response that is not JSON") from None
    if not isinstance(data, dict) or data.get("object") != "response" or not isinstance(data.get("id"), str):
        raise UpstreamBadResponse(f"upstream {target} returned something that is not a response object")
    return data


def _substance(event: dict[str, Any]) -> dict[str, Any]:
    """A canonical-looking chunk for an event, so that the executor and the relay can tell
    substance and usage: text and argument deltas, and the final event with its usage."""
    kind = event.get("type")
    chunk: dict[str, Any] = {"_event": event}
    if kind == "response.output_text.delta" and event.get("delta"):
        chunk["choices"] = [{"index": 0, "delta": {"content": event["delta"]}}]
    elif kind == "response.function_call_arguments.delta" and event.get("delta"):
        chunk["choices"] = [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": event["delta"]}}]}}]
    elif kind in ("response.output_item.added", "response.output_item.done"):
        item = event.get("item") or {}
        if item.get("type") == "function_call":
            chunk["choices"] = [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": item.get("name")}}]}}]
    elif kind in _FINAL:
        response = event.get("response") or {}
        chunk["choices"] = [{"index": 0, "delta": {}, "finish_reason": "stop"}]
        usage = canonical_usage(response.get("usage"))
        if usage:
            chunk["usage"] = usage
    return chunk


class ResponsesStreamTranslator:
    """Native Responses SSE -> chunks carrying each event (see `_substance`)."""

    __slots__ = ("target", "parser", "done")

    def __init__(self, target: str) -> None:
        self.target = target
        self.parser = SSEParser()
        self.done = False

    def _chunks(self, events) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in events:
            if event.data == "[DONE]":
                continue
            try:
                data = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                raise UpstreamBadResponse(f"upstream {self.target} sent a stream event that is not JSON") from None
            if not isinstance(data, dict):
                raise UpstreamBadResponse(f"upstream {self.target} sent a stream event that is not an object")
            if data.get("type") == "error" or event.event == "error":
                message = data.get("message") or (data.get("error") or {}).get("message")
                raise upstream_status_error(502, str(message)[:500] if message else None, None, self.target)
            if data.get("type") in _FINAL:
                self.done = True
            out.append(_substance(data))
        return out

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        return self._chunks(self.parser.feed(data))

    def finish(self) -> list[dict[str, Any]]:
        out = self._chunks(self.parser.flush())
        if not self.done:
            raise UpstreamBadResponse(f"upstream {self.target} ended the stream before response.completed")
        return out


def error_for(status: int, body: bytes, headers: dict[str, str], target: str) -> GatewayError:
    """As for chat (errors.upstream_status_error), except that the provider's 404 for a response
    it does not keep (an expired or deleted `previous_response_id`) is the client's 404."""
    if status == 404:
        try:
            error = orjson.loads(body).get("error") or {}
        except (orjson.JSONDecodeError, AttributeError):
            error = {}
        if isinstance(error, dict) and error.get("param") == "previous_response_id":
            return NotFound(str(error.get("message") or "previous response not found")[:500],
                            param="previous_response_id")
    return _OPENAI.error_for(status, body, headers, target)


class NativeResponses:
    """Stands in for the provider adapter of the targets that speak the Responses API (the
    executor's `native`): sends the client's body (with the history of a stored previous response
    already expanded), parses the answer and the stream."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def serves(self, provider: ProviderConfig) -> bool:
        return speaks_responses(provider)

    def chat_request(self, provider: ProviderConfig, api_key: str | None, model: str, request: dict[str, Any],
                     stream: bool) -> UpstreamRequest:
        return create_request(provider, api_key, model, self.body, stream)

    def chat_response(self, body: bytes, target: str, model: str) -> dict[str, Any]:
        return parse_response(body, target, model)

    def stream_translator(self, target: str, model: str) -> ResponsesStreamTranslator:
        return ResponsesStreamTranslator(target)

    def error_for(self, status: int, body: bytes, headers: dict[str, str], target: str) -> GatewayError:
        return error_for(status, body, headers, target)
