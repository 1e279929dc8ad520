"""Gemini API surface: models/{model}:generateContent and :streamGenerateContent.

google-genai 1.x calls them under /v1beta; its later releases under /v1: both are served.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from .. import pipeline
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
