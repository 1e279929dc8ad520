"""The data-plane endpoints, registered once. The fast lane (middleware/fast_lane.py) dispatches
them ahead of FastAPI; everything else (probes, model lists, usage, 404s) is FastAPI's.

`EXACT` maps (method, path) to an endpoint taking the request; `PREFIXES` maps (method, path
prefix) to one taking the request and the rest of the path (Gemini's `models/{model}:{method}`,
which always holds a colon). Add a data-plane endpoint here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from . import anthropic, gemini, openai
from . import responses as responses_api

Endpoint = Callable[[Request], Awaitable[Response]]
PrefixEndpoint = Callable[[Request, str], Awaitable[Response]]

EXACT: dict[tuple[str, str], Endpoint] = {
    ("POST", "/v1/chat/completions"): openai.chat_completions,
    ("POST", "/v1/embeddings"): openai.embeddings,
    ("POST", "/v1/messages"): anthropic.messages,
    ("POST", "/v1/messages/count_tokens"): anthropic.count_tokens,
    ("POST", "/v1/responses"): responses_api.create,
}

PREFIXES: tuple[tuple[str, str, PrefixEndpoint], ...] = (
    ("POST", "/v1beta/models/", gemini.generate),
    ("POST", "/v1/models/", gemini.generate),
)
