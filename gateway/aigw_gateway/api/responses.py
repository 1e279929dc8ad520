"""OpenAI Responses API surface: POST /v1/responses, GET and DELETE /v1/responses/{id},
GET /v1/responses/{id}/input_items."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..responses import flow
from .common import read_json_object, state_of

router = APIRouter()


@router.post("/v1/responses")
async def create(request: Request) -> Response:
    state = state_of(request)
    body = await read_json_object(request, state.runtime().config.settings.max_request_body_bytes)
    return await flow.create(state, request, body)


@router.get("/v1/responses/{response_id}")
async def retrieve(request: Request, response_id: str) -> Response:
    return await flow.retrieve(state_of(request), request, response_id)


@router.get("/v1/responses/{response_id}/input_items")
async def input_items(request: Request, response_id: str) -> Response:
    return await flow.list_input_items(state_of(request), request, response_id)


@router.delete("/v1/responses/{response_id}")
async def delete(request: Request, response_id: str) -> Response:
    return await flow.delete(state_of(request), request, response_id)
