"""Anthropic Messages API surface: POST /v1/messages (anthropic SDK with base_url=<gateway>)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from .. import pipeline
from ..ingress.anthropic import INGRESS
from .common import read_json_object, state_of

router = APIRouter()


@router.post("/v1/messages")
async def messages(request: Request) -> Response:
    state = state_of(request)
    body = await read_json_object(request, state.runtime().config.settings.max_request_body_bytes)
    return await pipeline.chat(state, request, INGRESS, body)
