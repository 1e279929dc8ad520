"""Provider adapters, one module per provider API family."""

from __future__ import annotations

from .anthropic import AnthropicAdapter
from .azure_openai import AzureOpenAIAdapter
from .bedrock import BedrockAdapter
from .base import ProviderAdapter, UpstreamRequest
from .gemini import GeminiAdapter
from .ollama import OllamaAdapter
from .openai import OpenAIAdapter

_OPENAI = OpenAIAdapter()

ADAPTERS: dict[str, ProviderAdapter] = {
    "openai": _OPENAI,
    "openai-compatible": _OPENAI,
    "anthropic": AnthropicAdapter(),
    "gemini": GeminiAdapter(),
    "azure-openai": AzureOpenAIAdapter(),
    "ollama": OllamaAdapter(),
    "bedrock": BedrockAdapter(),
}


def adapter_for(provider: str) -> ProviderAdapter | None:
    return ADAPTERS.get(provider)


__all__ = ["ADAPTERS", "ProviderAdapter", "UpstreamRequest", "adapter_for"]
