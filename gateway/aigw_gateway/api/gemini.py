"""Gemini API surface: models/{model}:generateContent, :streamGenerateContent, :countTokens,
:embedContent and :batchEmbedContents. Routes with a Gemini target are passed through
(passthrough/gemini.py).

google-genai 1.x calls them under /v1beta; its later releases under /v1: both are served.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from .. import pipeline
from ..auth import authenticate
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


@router.get("/v1beta/models")
async def list_models(request: Request) -> Response:
    runtime = state_of(request).runtime()
    tenant = authenticate(runtime, request.headers)
    models = [
        {"name": f"models/{name}", "displayName": name, "description": f"aigw route {route.name}",
         "supportedGenerationMethods": list(_ACTIONS)}
        for name, route in sorted(runtime.routes_by_model.items()) if runtime.may_use(tenant, route)
    ]
    return Response(orjson.dumps({"models": models}), media_type="application/json")
