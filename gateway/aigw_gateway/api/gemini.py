"""Gemini API surface: models/{model}:generateContent and :streamGenerateContent.

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
from .common import read_json_object, state_of

router = APIRouter()
_ACTIONS = {"generateContent": False, "streamGenerateContent": True}


async def generate(request: Request, target: str) -> Response:
    model, _, action = target.rpartition(":")
    if action not in _ACTIONS or not model:
        raise NotFound(f"no such method: models/{target}; supported: generateContent, streamGenerateContent")
    state = state_of(request)
    body = await read_json_object(request, state.runtime().config.settings.max_request_body_bytes)
    return await pipeline.chat(state, request, INGRESS, body, model=model, stream=_ACTIONS[action])


@router.post("/v1beta/models/{target:path}")
async def generate_v1beta(request: Request, target: str) -> Response:
    return await generate(request, target)


@router.post("/v1/models/{target:path}")
async def generate_v1(request: Request, target: str) -> Response:
    return await generate(request, target)


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
