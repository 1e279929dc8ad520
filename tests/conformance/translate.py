"""Pure translation helpers for the conformance suite: a client body through the client's ingress,
the target's field rules and the target's adapter, to the upstream body (or the 400 it gets);
a provider answer through the adapter and the client's ingress, back to the client's shape."""

from __future__ import annotations

from typing import Any

import orjson

from aigw_config.config import ProviderConfig
from aigw_gateway.errors import InvalidRequest
from aigw_gateway.ingress.anthropic import INGRESS as ANTHROPIC
from aigw_gateway.ingress.gemini import INGRESS as GEMINI
from aigw_gateway.ingress.openai import INGRESS as OPENAI
from aigw_gateway.providers import ADAPTERS
from aigw_gateway.wire import fit, rules_for
from aigw_gateway.wire.canonical import client_param

CLIENTS = {"openai": OPENAI, "anthropic": ANTHROPIC, "gemini": GEMINI}
PROVIDERS = ("openai", "anthropic", "gemini", "bedrock", "ollama")
BASE_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com",
             "gemini": "https://generativelanguage.googleapis.com", "bedrock": "https://bedrock-runtime.us-east-1.amazonaws.com",
             "ollama": "http://127.0.0.1:11434"}
UPSTREAM_MODEL = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash",
                  "bedrock": "anthropic.claude-sonnet-4-5", "ollama": "llama3.2"}


class Rejected(Exception):
    def __init__(self, param: str | None, message: str) -> None:
        super().__init__(message)
        self.param = param


def canonical(client: str, body: dict[str, Any], *, model: str = "m", stream: bool = False) -> dict[str, Any]:
    kwargs = {"model": model, "stream": stream} if client == "gemini" else {}
    return CLIENTS[client].parse_request(body, **kwargs)


def upstream(client: str, provider: str, body: dict[str, Any], *, mode: str = "reject",
             stream: bool = False) -> tuple[dict[str, Any], tuple[str, ...]]:
    """(the upstream body, fields dropped); raises Rejected with the param a 400 would name."""
    request = canonical(client, body, stream=stream)
    config = ProviderConfig(name="p", provider=provider, baseURL=BASE_URLS[provider])
    try:
        fitted, dropped = fit(rules_for(provider), request, mode, f"p/{UPSTREAM_MODEL[provider]}")
        out = ADAPTERS[provider].chat_request(config, "key", UPSTREAM_MODEL[provider], fitted, stream)
    except InvalidRequest as err:  # named as the executor names it: the client's own path
        raise Rejected(client_param(request, err.param), err.message) from None
    return orjson.loads(out.content), dropped


def answer(provider: str, client: str, raw: dict[str, Any], *, model: str = "m") -> dict[str, Any]:
    """A provider's non-streamed answer as the client sees it."""
    response = ADAPTERS[provider].chat_response(orjson.dumps(raw), "p/x", UPSTREAM_MODEL[provider])
    return CLIENTS[client].render_response(response, model)


def stream_answer(provider: str, client: str, raw: bytes, *, request: dict[str, Any] | None = None) -> bytes:
    translator = ADAPTERS[provider].stream_translator("p/x", UPSTREAM_MODEL[provider])
    encoder = CLIENTS[client].stream_encoder("m", request or {"stream_options": {"include_usage": True}})
    chunks = translator.feed(raw) + translator.finish()
    return b"".join(encoder.chunk(c) for c in chunks) + encoder.end()
