"""Anthropic Messages API surface: POST /v1/messages and /v1/messages/count_tokens (anthropic SDK
with base_url=<gateway>). Routes with an Anthropic target are passed through (passthrough/)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from .. import pipeline
from ..errors import InvalidRequest
from ..ingress.anthropic import INGRESS
from ..passthrough import flow
from ..passthrough.anthropic import API
from .common import read_json_body, state_of

router = APIRouter()


def _model(body: dict) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Field required", param="model")
    return model


async def messages(request: Request) -> Response:
    state = state_of(request)
    runtime = state.runtime()
    raw, body = await read_json_body(request, runtime.config.settings.max_request_body_bytes)
    model = body.get("model")
    if isinstance(model, str) and flow.serves_natively(runtime, API, model):
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise InvalidRequest("stream must be a boolean", param="stream")
        return await flow.chat(state, request, API, raw, body, model=model, stream=stream)
    return await pipeline.chat(state, request, INGRESS, body)


async def count_tokens(request: Request) -> Response:
    state = state_of(request)
    raw, body = await read_json_body(request, state.runtime().config.settings.max_request_body_bytes)
    return await flow.count_tokens(state, request, API, raw, body, model=_model(body))
