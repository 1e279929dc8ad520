"""The one small protocol every provider adapter implements.

The gateway's canonical format is OpenAI's chat completions format, as plain dicts: requests
(`model`, `messages`, `tools`, `stream`, `max_tokens`, ...), `chat.completion` responses and
`chat.completion.chunk` stream chunks, with `usage` as {prompt_tokens, completion_tokens,
total_tokens}. An adapter translates the canonical request into its provider's wire format and
the provider's answers back into canonical dicts. Adapters are pure: no I/O, no clocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from aigw_config.config import ProviderConfig

from ..errors import GatewayError


@dataclass(frozen=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    content: bytes


class StreamTranslator(Protocol):
    """Turns one upstream stream into canonical chunks, incrementally.

    `feed` takes raw upstream bytes as they arrive (any split) and returns the complete
    `chat.completion.chunk` dicts they finish; a provider error event raises a GatewayError.
    The last chunk carries `usage` when the provider reported it (adapters ask for it).
    `finish` is called at upstream EOF and raises UpstreamBadResponse if the stream ended
    before its proper end (no [DONE] / message_stop / final candidate).
    """

    def feed(self, data: bytes) -> list[dict[str, Any]]: ...

    def finish(self) -> list[dict[str, Any]]: ...


class ProviderAdapter(Protocol):
    def chat_request(
        self, provider: ProviderConfig, api_key: str | None, model: str, request: dict[str, Any], stream: bool
    ) -> UpstreamRequest:
        """The upstream request for a canonical chat request; `model` is the upstream model name."""
        ...

    def chat_response(self, body: bytes, target: str, model: str) -> dict[str, Any]:
        """A canonical `chat.completion` dict from a 2xx body; UpstreamBadResponse if malformed."""
        ...

    def stream_translator(self, target: str, model: str) -> StreamTranslator: ...

    def error_for(self, status: int, body: bytes, headers: dict[str, str], target: str) -> GatewayError:
        """Map a non-2xx answer to the gateway's error tree (see errors.py for the rules)."""
        ...
