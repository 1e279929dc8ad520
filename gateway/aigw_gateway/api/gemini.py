"""Gemini API surface: models/{model}:generateContent, :streamGenerateContent, :countTokens,
:embedContent and :batchEmbedContents. Routes with a Gemini target are passed through
(passthrough/gemini.py).

google-genai 1.x calls them under /v1beta; its later releases under /v1: both are served.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from .. import pipeline
from ..errors import NotFound
from ..ingress.gemini import INGRESS
from ..passthrough import flow
from ..passthrough.gemini import API, embeddings_adapter, embeddings_estimate
from .common import read_json_body, state_of

router = APIRouter()
_ACTIONS = {"generateContent": False, "streamGenerateContent": True}
_METHODS = (*_ACTIONS, "countTokens", "embedContent", "batchEmbedContents")


async def generate(request: Request, target: str) -> Response:
    model, _, action = target.rpartition(":")
    model = model.removeprefix("models/")
    if action not in _METHODS or not model:
        raise NotFound(f"no such method: models/{target}; supported: {', '.join(_METHODS)}")
    state = state_of(request)
    runtime = state.runtime()
    raw, body = await read_json_body(request, runtime.config.settings.max_request_body_bytes)
    if action == "countTokens":
        return await flow.count_tokens(state, request, API, raw, body, model=model)
    if action in ("embedContent", "batchEmbedContents"):
        return await flow.embeddings(state, request, API, raw, body, model=model, action=action,
                                     pick=embeddings_adapter, estimate=embeddings_estimate)
    if flow.serves_natively(runtime, API, model):
        return await flow.chat(state, request, API, raw, body, model=model, stream=_ACTIONS[action])
    return await pipeline.chat(state, request, INGRESS, body, model=model, stream=_ACTIONS[action])


