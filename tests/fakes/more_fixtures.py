"""Fixtures for the Azure OpenAI, Ollama and Bedrock fakes, and helpers that drive an adapter
against a fake over real HTTP the way the gateway does: through the gateway's own upstream
client (`aigw_gateway.upstream.UpstreamClient`, URLs sent as built), whose URL handling is
part of what an adapter must get right (it sends a `%3A` in a path as `:`).

Import what you use into a test module (they are not registered in the root conftest)::

    from tests.fakes.more_fixtures import fake_bedrock, send_unary, send_stream  # noqa: F401

Fixtures (function scope, stopped at teardown)
--------
fake_azure_openai   ``FakeAzureOpenAI(api_key=AZURE_API_KEY)``
fake_ollama         ``FakeOllama()`` (keyless, like a local Ollama)
fake_bedrock        ``FakeBedrock`` accepting SigV4 with AWS_KEYS (session token included)
                    and the Bedrock API key BEDROCK_API_KEY
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from aigw_config.config import ProviderConfig
from aigw_gateway.providers.base import ProviderAdapter, StreamTranslator
from aigw_gateway.upstream import TRANSPORT_ERRORS, UpstreamClient, map_transport_error
from tests.fakes.azure_openai_provider import FakeAzureOpenAI
from tests.fakes.bedrock_provider import FakeBedrock
from tests.fakes.ollama_provider import FakeOllama

__all__ = [
    "AWS_ACCESS_KEY_ID", "AWS_KEYS", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_API_KEY", "BEDROCK_API_KEY",
    "fake_azure_openai", "fake_bedrock", "fake_ollama", "feed_in_splits", "merge_chunks", "provider_config",
    "send_stream", "send_unary",
]

AZURE_API_KEY = "azure-upstream-key-0123456789"
AWS_ACCESS_KEY_ID = "AKIAFAKEEXAMPLE00001"
AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYFAKEKEY0001"
AWS_SESSION_TOKEN = "IQoJb3JpZ2luX2VjEFAKE/session+token=="
AWS_KEYS = f"{AWS_ACCESS_KEY_ID}:{AWS_SECRET_ACCESS_KEY}:{AWS_SESSION_TOKEN}"
BEDROCK_API_KEY = "ABSKQmVkcm9ja0FQSUtleS1mYWtlLWtleQ=="
HTTP_TIMEOUT = 10.0


@pytest.fixture
def fake_azure_openai() -> Iterator[FakeAzureOpenAI]:
    with FakeAzureOpenAI(api_key=AZURE_API_KEY) as fake:
        yield fake


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    with FakeOllama() as fake:
        yield fake


@pytest.fixture
def fake_bedrock() -> Iterator[FakeBedrock]:
    with FakeBedrock(access_key_id=AWS_ACCESS_KEY_ID, secret_access_key=AWS_SECRET_ACCESS_KEY,
                     session_token=AWS_SESSION_TOKEN, api_key=BEDROCK_API_KEY) as fake:
        yield fake


def provider_config(provider: str, base_url: str, **fields: Any) -> ProviderConfig:
    return ProviderConfig(name=f"{provider}-test", provider=provider, base_url=base_url, **fields)


async def send_unary(
    adapter: ProviderAdapter, provider: ProviderConfig, api_key: str | None, model: str, request: dict[str, Any],
    target: str = "test",
) -> dict[str, Any]:
    """The canonical response, or the adapter's GatewayError raised for a non-2xx answer."""
    up = adapter.chat_request(provider, api_key, model, request, False)
    client = UpstreamClient()
    try:
        resp = await client.send(up, connect_timeout=HTTP_TIMEOUT, read_timeout=HTTP_TIMEOUT)
        body = await resp.read()
    except TRANSPORT_ERRORS as exc:  # mapped as the gateway maps them
        raise map_transport_error(exc, target) from None
    finally:
        await client.aclose()
    if not 200 <= resp.status < 300:
        raise adapter.error_for(resp.status, body, resp.headers, target)
    return adapter.chat_response(body, target, model)


async def send_stream(
    adapter: ProviderAdapter, provider: ProviderConfig, api_key: str | None, model: str, request: dict[str, Any],
    target: str = "test",
) -> tuple[list[dict[str, Any]], bytes]:
    """(canonical chunks, raw upstream bytes): fed to a translator piece by piece as they arrive."""
    up = adapter.chat_request(provider, api_key, model, request, True)
    translator = adapter.stream_translator(target, model)
    chunks: list[dict[str, Any]] = []
    raw = bytearray()
    client = UpstreamClient()
    try:
        resp = await client.send(up, connect_timeout=HTTP_TIMEOUT, read_timeout=HTTP_TIMEOUT)
        if not 200 <= resp.status < 300:
            body = await resp.read()
            raise adapter.error_for(resp.status, body, resp.headers, target)
        async for piece in resp.iter_chunks():
            raw += piece
            chunks.extend(translator.feed(piece))
        await resp.aclose()
    except TRANSPORT_ERRORS as exc:  # mapped as the gateway maps them
        raise map_transport_error(exc, target) from None
    finally:
        await client.aclose()
    chunks.extend(translator.finish())
    return chunks, bytes(raw)


def feed_in_splits(translator: StreamTranslator, raw: bytes, seed: int, max_piece: int = 7) -> list[dict[str, Any]]:
    """Feed `raw` in random pieces of 1..max_piece bytes (a split can fall anywhere)."""
    rng = random.Random(seed)
    chunks: list[dict[str, Any]] = []
    pos = 0
    while pos < len(raw):
        step = rng.randint(1, max_piece)
        chunks.extend(translator.feed(raw[pos : pos + step]))
        pos += step
    chunks.extend(translator.finish())
    return chunks


def merge_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """What a client assembles from canonical chunks: role, content, tool calls, finish, usage."""
    out: dict[str, Any] = {"role": None, "content": "", "tool_calls": {}, "finish_reason": None, "usage": None}
    for chunk in chunks:
        assert chunk.get("object") == "chat.completion.chunk", chunk
        if chunk.get("usage"):
            out["usage"] = chunk["usage"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            out["role"] = delta.get("role") or out["role"]
            out["content"] += delta.get("content") or ""
            for call in delta.get("tool_calls") or ():
                slot = out["tool_calls"].setdefault(call["index"], {"id": None, "name": None, "arguments": ""})
                slot["id"] = call.get("id") or slot["id"]
                fn = call.get("function") or {}
                slot["name"] = fn.get("name") or slot["name"]
                slot["arguments"] += fn.get("arguments") or ""
            out["finish_reason"] = choice.get("finish_reason") or out["finish_reason"]
    out["tool_calls"] = [out["tool_calls"][i] for i in sorted(out["tool_calls"])]
    return out
