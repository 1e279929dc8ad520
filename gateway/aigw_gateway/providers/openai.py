"""OpenAI and OpenAI-compatible servers (vLLM, LM Studio, llama.cpp, ...): the native format.

Requests pass through with only `model` replaced; responses and SSE streams pass through
byte for byte, so nothing is lost and nothing is buffered.
"""

from __future__ import annotations

from typing import Any

import orjson

from aigw_config.config import ProviderConfig

from ..errors import (
    GatewayError,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
)
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
        detail = _upstream_message(body)
        if status == 429:
            retry_after = headers.get("retry-after")
            return UpstreamRateLimited(
                f"upstream {target} is rate limiting", headers={"retry-after": retry_after} if retry_after else None
            )
        if status in (401, 403):
            # The provider refused *our* credential: the client's key is fine, so never a 401 to it.
            return UpstreamError(f"upstream {target} refused the gateway's credentials (HTTP {status})")
        if status == 404:
            return UpstreamError(f"upstream {target} does not know the model or path (HTTP 404)")
        if 400 <= status < 500:
            err = UpstreamRejected(f"upstream {target} rejected the request: {detail or f'HTTP {status}'}")
            err.status_code = 400 if status != 413 else 413
            return err
        return UpstreamError(f"upstream {target} failed with HTTP {status}" + (f": {detail}" if detail else ""))
