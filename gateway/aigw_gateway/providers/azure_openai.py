"""Azure OpenAI: OpenAI's wire format behind deployment URLs and an `api-key` header.

`POST {base}/openai/deployments/{deployment}/chat/completions?api-version={apiVersion}` (and
`.../embeddings`); the
target's upstream model name is the deployment name and the body carries no `model` (Azure
routes by URL). Bodies, streams and error bodies (`{"error": {"code", "message"}}`) are OpenAI's,
so parsing is composed from providers/openai.py. What differs:
- `stream_options` exists only from api-version 2024-08-01-preview on; older versions reject
  the field with a 400, so usage in streams is asked for only where the version knows it
  (those streams then carry no usage: Azure cannot report it);
- a stream opens with a chunk that has no choices, only `prompt_filter_results` (and an empty
  id and model): not a canonical chunk, so it is dropped. `finish_reason: "content_filter"`
  and per-choice `content_filter_results` pass through untouched;
- a 429 may carry `retry-after-ms` instead of `retry-after`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from aigw_config.config import ProviderConfig

from ..errors import GatewayError
from ..wire.openai import openai_body
from .base import UpstreamRequest
from .openai import OpenAIAdapter, OpenAIStreamTranslator

STREAM_USAGE_SINCE = "2024-08-01"

_OPENAI = OpenAIAdapter()


def deployment_url(base_url: str, deployment: str, operation: str, api_version: str) -> str:
    """`{base}/openai/deployments/{deployment}/{operation}?api-version=...`; a base URL that
    already ends in /openai is accepted too."""
    base = base_url.rstrip("/")
    if not base.endswith("/openai"):
        base += "/openai"
    return f"{base}/deployments/{quote(deployment, safe='')}/{operation}?api-version={quote(api_version, safe='')}"


def chat_url(base_url: str, deployment: str, api_version: str) -> str:
    return deployment_url(base_url, deployment, "chat/completions", api_version)


def supports_stream_usage(api_version: str) -> bool:
    """Dated versions before STREAM_USAGE_SINCE do not; undated ones ("preview", "latest") do."""
    date = api_version[:10]
    if len(date) == 10 and date[4] == "-" and date[7] == "-" and date.replace("-", "").isdigit():
        return date >= STREAM_USAGE_SINCE
    return True


def _retry_after(headers: dict[str, str]) -> str | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after" in lowered:
        return lowered["retry-after"]
    millis = lowered.get("retry-after-ms")
    try:
        return str(max(1, -(-int(float(millis)) // 1000))) if millis is not None else None
    except ValueError:
        return None


class AzureOpenAIAdapter:
    def chat_request(
        self, provider: ProviderConfig, api_key: str | None, model: str, request: dict[str, Any], stream: bool
    ) -> UpstreamRequest:
        api_version = provider.api_version or ""
        headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
        if stream:
            headers["accept-encoding"] = "identity"
        if api_key:
            headers["api-key"] = api_key
        body = {k: v for k, v in openai_body(request).items() if k != "model"}
        body["stream"] = stream  # explicit: the canonical request may come from another ingress
        if stream and supports_stream_usage(api_version):
            # Always ask for usage (cost and token limits settle from it); the client's encoder
            # drops the usage chunk again unless the client asked for it.
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        else:
            body.pop("stream_options", None)
        url = chat_url(provider.base_url, model, api_version)
        return UpstreamRequest("POST", url, headers, orjson.dumps(body))

    def chat_response(self, body: bytes, target: str, model: str) -> dict[str, Any]:
        return _OPENAI.chat_response(body, target, model)

    def embeddings_request(self, provider: ProviderConfig, api_key: str | None, model: str,
                           request: dict[str, Any]) -> UpstreamRequest:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if api_key:
            headers["api-key"] = api_key
        body = orjson.dumps({k: v for k, v in request.items() if k != "model"})
        return UpstreamRequest("POST", deployment_url(provider.base_url, model, "embeddings", provider.api_version or ""),
                               headers, body)

    def embeddings_response(self, body: bytes, target: str, model: str) -> dict[str, Any]:
        return _OPENAI.embeddings_response(body, target, model)

    def stream_translator(self, target: str, model: str) -> "AzureOpenAIStreamTranslator":
        return AzureOpenAIStreamTranslator(target)

    def error_for(self, status: int, body: bytes, headers: dict[str, str], target: str) -> GatewayError:
        retry_after = _retry_after(headers)
        return _OPENAI.error_for(status, body, {"retry-after": retry_after} if retry_after else {}, target)


class AzureOpenAIStreamTranslator:
    """OpenAI SSE as Azure sends it -> canonical chunks; ends properly only with [DONE]."""

    __slots__ = ("inner",)

    def __init__(self, target: str) -> None:
        self.inner = OpenAIStreamTranslator(target)

    @staticmethod
    def _canonical(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # The prompt-filter chunk (no choices, no usage) carries nothing a client can use.
        return [c for c in chunks if c.get("choices") or c.get("usage")]

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        return self._canonical(self.inner.feed(data))

    def finish(self) -> list[dict[str, Any]]:
        return self._canonical(self.inner.finish())
