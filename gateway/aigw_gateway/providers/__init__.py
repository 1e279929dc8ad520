"""Provider adapters, one module per provider API family."""

from __future__ import annotations

from .anthropic import AnthropicAdapter
from .base import ProviderAdapter, UpstreamRequest
from .gemini import GeminiAdapter
from .openai import OpenAIAdapter

_OPENAI = OpenAIAdapter()

ADAPTERS: dict[str, ProviderAdapter] = {
    "openai": _OPENAI,
    "openai-compatible": _OPENAI,
    "anthropic": AnthropicAdapter(),
    "gemini": GeminiAdapter(),
}


def adapter_for(provider: str) -> ProviderAdapter | None:
    return ADAPTERS.get(provider)


__all__ = ["ADAPTERS", "ProviderAdapter", "UpstreamRequest", "adapter_for"]
