"""OpenAI and OpenAI-compatible servers (vLLM, LM Studio, llama.cpp, ...): the native format.

Requests pass through with only `model` replaced; responses and SSE streams pass through
byte for byte, so nothing is lost and nothing is buffered.
"""

from __future__ import annotations

from typing import Any

import orjson

from aigw_config.config import ProviderConfig

from ..errors import GatewayError, UpstreamBadResponse, upstream_status_error
from .base import UpstreamRequest

_JSON = {"content-type": "application/json", "accept": "application/json"}
# identity: a stream is relayed as it arrives, never through a decompressor's buffer.
_SSE = {"content-type": "application/json", "accept": "text/event-stream", "accept-encoding": "identity"}


def _upstream_message(body: bytes) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"][:500]
        if isinstance(err, str):
            return err[:500]
    return None


class OpenAIAdapter:
    def chat_request(
        self, provider: ProviderConfig, api_key: str | None, model: str, payload: dict[str, Any], stream: bool
    ) -> UpstreamRequest:
        headers = dict(_SSE if stream else _JSON)
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        body = dict(payload)
        body["model"] = model
        return UpstreamRequest("POST", provider.base_url + "/chat/completions", headers, orjson.dumps(body))

    def chat_response(self, status: int, body: bytes, target: str) -> bytes:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(f"upstream {target} returned a response that is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise UpstreamBadResponse(f"upstream {target} returned a response without choices")
        return body

    def error_for(self, status: int, body: bytes, headers: dict[str, str], target: str) -> GatewayError:
        return upstream_status_error(status, _upstream_message(body), headers.get("retry-after"), target)
