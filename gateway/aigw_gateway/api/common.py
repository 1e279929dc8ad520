"""Helpers shared by the API routers: state access, bounded body reading, JSON parsing."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from ..errors import InvalidJSON, InvalidRequest, RequestTooLarge
from ..state import GatewayState


def state_of(request: Request) -> GatewayState:
    return request.app.state.gateway


def request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id", "")


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """Read at most `limit` bytes of body and parse a JSON object; 413 and 400 otherwise."""
    return (await read_json_body(request, limit))[1]


async def read_json_body(request: Request, limit: int) -> tuple[bytes, dict[str, Any]]:
    """The body's bytes and its JSON object (passthrough forwards the bytes)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise RequestTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
        except ValueError:
            raise InvalidRequest("invalid Content-Length header") from None
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"request body exceeds the limit of {limit} bytes")
        parts.append(chunk)
    body = b"".join(parts)
    if not body:
        raise InvalidJSON("request body is empty; expected a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"request body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body, data
