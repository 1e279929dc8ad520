"""The one small protocol every provider adapter implements."""

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


class ProviderAdapter(Protocol):
    """Translates an OpenAI-format chat request to one provider's wire format and back."""

    def chat_request(
        self, provider: ProviderConfig, api_key: str | None, model: str, payload: dict[str, Any], stream: bool
    ) -> UpstreamRequest: ...

    def chat_response(self, status: int, body: bytes, target: str) -> bytes:
        """Return an OpenAI `chat.completion` body for a 2xx answer, or raise a GatewayError."""
        ...

    def error_for(self, status: int, body: bytes, headers: dict[str, str], target: str) -> GatewayError:
        """Map a non-2xx answer to the gateway's error tree."""
        ...
