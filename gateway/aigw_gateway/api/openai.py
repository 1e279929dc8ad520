"""OpenAI-compatible API surface: /v1/chat/completions and /v1/models."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

import orjson

from .. import proxy
from ..auth import authenticate
from ..errors import InvalidRequest, ModelNotFound, PermissionDenied
from .common import read_json_object, request_id, state_of

router = APIRouter()


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    state = state_of(request)
    runtime = state.runtime()
    tenant = authenticate(runtime, request.headers)
    payload = await read_json_object(request, runtime.config.settings.max_request_body_bytes)
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string", param="model")
    if not isinstance(payload.get("messages"), list):
        raise InvalidRequest("'messages' is required and must be an array", param="messages")
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    route = runtime.routes_by_model.get(model)
    if route is None:
        raise ModelNotFound(f"The model '{model}' does not exist", param="model")
    if not runtime.may_use(tenant, route):
        raise PermissionDenied(f"this API key may not use the model '{model}'", param="model")
    assert state.client is not None
    return await proxy.chat(state.client, runtime, route, payload, stream, request_id(request))


@router.get("/v1/models")
async def list_models(request: Request) -> Response:
    runtime = state_of(request).runtime()
    tenant = authenticate(runtime, request.headers)
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": f"aigw/{route.name}"}
        for name, route in sorted(runtime.routes_by_model.items())
        if runtime.may_use(tenant, route)
    ]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")
