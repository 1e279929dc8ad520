"""The protocol each client-facing API format implements (OpenAI, Anthropic, Gemini).

An ingress turns the client's request into a canonical OpenAI chat request (plain dict), and
canonical responses and `chat.completion.chunk` dicts back into the client's wire format. Pure:
no I/O. Errors are rendered by `errors.render_error` in the matching format.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..errors import GatewayError


class StreamEncoder(Protocol):
    """Encodes one canonical chunk stream for the client, statefully (one per request)."""

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        """Bytes to send for this canonical chunk (may be b"" when nothing is due yet)."""
        ...

    def end(self) -> bytes:
        """Bytes that close a complete stream (OpenAI `data: [DONE]`, Anthropic `message_stop`)."""
        ...

    def error(self, err: GatewayError, request_id: str) -> bytes:
        """A well-formed error event ending a stream that failed after bytes reached the client."""
        ...


class Ingress(Protocol):
    name: str  # "openai" | "anthropic" | "gemini": also the error format

    def parse_request(self, body: dict[str, Any], *, model: str | None = None, stream: bool | None = None) -> dict[str, Any]:
        """The canonical chat request; `model`/`stream` come from the URL where the API puts them
        there (Gemini). Raises InvalidRequest (with `param`) on a malformed request."""
        ...

    def render_response(self, response: dict[str, Any], model: str) -> dict[str, Any]:
        """The client-format body for a canonical `chat.completion`; `model` is what the client asked for."""
        ...

    def stream_encoder(self, model: str, request: dict[str, Any]) -> StreamEncoder:
        """An encoder for one streamed response; `request` is the canonical request (for options
        such as OpenAI's stream_options.include_usage)."""
        ...

    @property
    def stream_media_type(self) -> str: ...
