"""OpenAI and OpenAI-compatible servers (vLLM, LM Studio, llama.cpp, ...): the native format.

Requests pass through with only `model` replaced; responses and SSE streams pass through
byte for byte, so nothing is lost and nothing is buffered.
"""

from __future__ import annotations

from typing import Any

import orjson

from aigw_config.config import ProviderConfig

from ..errors import GatewayError, UpstreamBadResponse, upstream_status_error
from ..streaming.sse import SSEParser
from ..wire.openai import openai_body
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
        body = dict(openai_body(payload))
        body["model"] = model
        if stream:
            # Always ask for usage: cost and token limits settle from it. The client's encoder
            # drops the usage chunk again unless the client asked for it.
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return UpstreamRequest("POST", provider.base_url + "/chat/completions", headers, orjson.dumps(body))

    def chat_response(self, body: bytes, target: str, model: str) -> dict[str, Any]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(f"upstream {target} returned a response that is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise UpstreamBadResponse(f"upstream {target} returned a response without choices")
        return data

    def embeddings_request(self, provider: ProviderConfig, api_key: str | None, model: str,
                           request: dict[str, Any]) -> UpstreamRequest:
        headers = dict(_JSON)
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return UpstreamRequest("POST", provider.base_url + "/embeddings", headers, orjson.dumps({**request, "model": model}))

    def embeddings_response(self, body: bytes, target: str, model: str) -> dict[str, Any]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(f"upstream {target} returned a response that is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise UpstreamBadResponse(f"upstream {target} returned an embeddings response without data")
        return data

    def stream_translator(self, target: str, model: str) -> "OpenAIStreamTranslator":
        return OpenAIStreamTranslator(target)

    def error_for(self, status: int, body: bytes, headers: dict[str, str], target: str) -> GatewayError:
        return upstream_status_error(status, _upstream_message(body), headers.get("retry-after"), target)


class OpenAIStreamTranslator:
    """OpenAI SSE -> canonical chunks (the same dicts); ends properly only with [DONE]."""

    __slots__ = ("target", "parser", "done")

    def __init__(self, target: str) -> None:
        self.target = target
        self.parser = SSEParser()
        self.done = False

    def _chunks(self, events) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in events:
            if event.data == "[DONE]":
                self.done = True
                continue
            try:
                data = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                raise UpstreamBadResponse(f"upstream {self.target} sent a stream event that is not JSON") from None
            if not isinstance(data, dict):
                raise UpstreamBadResponse(f"upstream {self.target} sent a stream event that is not an object")
            if "error" in data:
                raise upstream_status_error(502, _upstream_message(event.data.encode()), None, self.target)
            out.append(data)
        return out

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        return self._chunks(self.parser.feed(data))

    def finish(self) -> list[dict[str, Any]]:
        out = self._chunks(self.parser.flush())
        if not self.done:
            raise UpstreamBadResponse(f"upstream {self.target} ended the stream before [DONE]")
        return out
