"""OpenAI-compatible API surface: /v1/chat/completions and /v1/models."""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from .. import pipeline
from ..auth import authenticate
from ..ingress.openai import INGRESS
from ..passthrough import flow
from ..passthrough.openai import API
from .common import read_json_body, read_json_object, state_of

router = APIRouter()


async def chat_completions(request: Request) -> Response:
    state = state_of(request)
    runtime = state.runtime()
    raw, body = await read_json_body(request, runtime.config.settings.max_request_body_bytes)
    model = body.get("model")
    if isinstance(model, str) and flow.serves_natively(runtime, API, model):
        return await flow.chat(state, request, API, raw, body, model=model, stream=body.get("stream") is True,
                               validate=INGRESS.parse_request)
    return await pipeline.chat(state, request, INGRESS, body)


async def embeddings(request: Request) -> Response:
    state = state_of(request)
    body = await read_json_object(request, state.runtime().config.settings.max_request_body_bytes)
    return await pipeline.embeddings(state, request, body)


@router.get("/v1/usage")
async def usage(request: Request) -> Response:
    """Limits and spend of the calling key's tenant (shared across replicas when Redis is used)."""
    state = state_of(request)
    tenant = authenticate(state.runtime(), request.headers)
    return Response(orjson.dumps(await state.limiter.usage(tenant)), media_type="application/json")
