"""Model discovery in the shape each SDK expects: `GET /v1/models[/{id}]` (OpenAI, and google-genai
3.x, which calls the same paths) and `GET /v1beta/models[/{name}]` (google-genai).

The OpenAI SDK and google-genai both call `GET /v1/models`; google-genai is told apart by the
headers it always sends (`x-goog-api-key`, `x-goog-api-client`) or its `pageSize` parameter, and
gets Google's `{"models": [...]}` list, so `models.list()` of either SDK lists the routes. A model
the key may not use is as absent as an unknown one: 404 in the caller's error format.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from aigw_config.config import RouteConfig

from ..auth import authenticate
from ..errors import ModelNotFound, render_error
from .common import request_id, state_of

router = APIRouter()
GEMINI_METHODS = ("generateContent", "streamGenerateContent", "countTokens")


def is_gemini_client(request: Request) -> bool:
    headers = request.headers
    return ("x-goog-api-key" in headers or "x-goog-api-client" in headers
            or "pageSize" in request.query_params or "pageToken" in request.query_params)


def _visible(request: Request) -> list[tuple[str, RouteConfig]]:
    runtime = state_of(request).runtime()
    tenant = authenticate(runtime, request.headers)
    return [(name, route) for name, route in sorted(runtime.routes_by_model.items()) if runtime.may_use(tenant, route)]


def _openai_model(name: str, route: RouteConfig) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": f"aigw/{route.name}"}


def _gemini_model(name: str, route: RouteConfig) -> dict[str, Any]:
    return {"name": f"models/{name}", "displayName": name, "description": f"aigw route {route.name}",
            "supportedGenerationMethods": list(GEMINI_METHODS)}


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def _one(request: Request, model: str, gemini: bool) -> Response:
    name = model.removeprefix("models/") if gemini else model
    for candidate, route in _visible(request):
        if candidate == name:
            return _json(_gemini_model(name, route) if gemini else _openai_model(name, route))
    err = ModelNotFound(f"The model '{name}' does not exist", param="model")
    return Response(render_error(err, request_id(request), "gemini" if gemini else "openai"),
                    status_code=404, media_type="application/json")


@router.get("/v1/models")
async def list_v1(request: Request) -> Response:
    if is_gemini_client(request):
        return _json({"models": [_gemini_model(n, r) for n, r in _visible(request)]})
    return _json({"object": "list", "data": [_openai_model(n, r) for n, r in _visible(request)]})


@router.get("/v1beta/models")
async def list_v1beta(request: Request) -> Response:
    return _json({"models": [_gemini_model(n, r) for n, r in _visible(request)]})


@router.get("/v1/models/{model:path}")
async def get_v1(request: Request, model: str) -> Response:
    return _one(request, model, is_gemini_client(request))


@router.get("/v1beta/models/{model:path}")
async def get_v1beta(request: Request, model: str) -> Response:
    return _one(request, model, True)
