"""OpenAI chat completions: the canonical format itself, so translation is validation only."""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import GatewayError, InvalidRequest, render_error
from ..streaming.sse import sse_event

DONE = b"data: [DONE]\n\n"


class OpenAIStreamEncoder:
    __slots__ = ("include_usage",)

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        if "usage" in chunk and not self.include_usage:
            if not chunk.get("choices"):
                return b""  # the usage-only chunk the client did not ask for
            chunk = {k: v for k, v in chunk.items() if k != "usage"}
        return sse_event(orjson.dumps(chunk))

    def end(self) -> bytes:
        return DONE

    def error(self, err: GatewayError, request_id: str) -> bytes:
        return sse_event(render_error(err, request_id, "openai"))


class OpenAIIngress:
    name = "openai"
    stream_media_type = "text/event-stream"

    def parse_request(self, body: dict[str, Any], *, model: str | None = None, stream: bool | None = None) -> dict[str, Any]:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("'model' is required and must be a string", param="model")
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            raise InvalidRequest("'messages' is required and must be a non-empty array", param="messages")
        if not isinstance(body.get("stream", False), bool):
            raise InvalidRequest("'stream' must be a boolean", param="stream")
        return body

    def render_response(self, response: dict[str, Any], model: str) -> dict[str, Any]:
        return response

    def stream_encoder(self, model: str, request: dict[str, Any]) -> OpenAIStreamEncoder:
        options = request.get("stream_options")
        return OpenAIStreamEncoder(isinstance(options, dict) and options.get("include_usage") is True)


INGRESS = OpenAIIngress()
