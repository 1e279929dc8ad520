"""Helpers shared by the API routers: state access, bounded body reading, JSON parsing."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from ..auth import authenticate_request
from ..errors import InvalidJSON, InvalidRequest, RequestTooLarge
from ..state import GatewayState


def state_of(request: Request) -> GatewayState:
    return request.app.state.gateway


def request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id", "")


MAX_JSON_DEPTH = 64  # no API nests deeper; orjson itself refuses to write past 254


def _depth_exceeds(data: Any, limit: int) -> bool:
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def check_shape(data: dict[str, Any], body: bytes, max_items: int) -> None:
    """400 for a body nested deeper than MAX_JSON_DEPTH or with a top-level array over `max_items`."""
    # Fewer brackets than the limit cannot nest past it: the walk is skipped for nearly every body.
    if body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH and _depth_exceeds(data, MAX_JSON_DEPTH):
        raise InvalidRequest(f"request body nests JSON deeper than {MAX_JSON_DEPTH} levels")
    for field, value in data.items():
        if isinstance(value, list) and len(value) > max_items:
            raise InvalidRequest(f"'{field}' has {len(value)} items; at most {max_items} are accepted "
                                 "(the gateway's maxRequestItems)", param=field)


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """Authenticate, then read at most `limit` bytes of body and parse a JSON object; 401, 413
    and 400 otherwise. No byte of the body is read for a caller without a valid key."""
    return (await read_json_body(request, limit))[1]


async def read_json_body(request: Request, limit: int) -> tuple[bytes, dict[str, Any]]:
    """The body's bytes and its JSON object (passthrough forwards the bytes); authenticates first."""
    runtime = state_of(request).runtime()
    authenticate_request(runtime, request)
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
    check_shape(data, body, runtime.config.settings.max_request_items)
    return body, data
