"""One chat request, whatever API the client speaks: auth -> route -> targets -> client format.

The stages work on the canonical (OpenAI) format; the ingress translates at both ends. A stream
is relayed chunk by chunk as it arrives; once bytes reached the client, a failure ends the
stream with an error event in the client's format, never a silent cut.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from aigw_config.config import RouteConfig, TenantConfig

from .auth import authenticate
from .errors import GatewayError, InvalidRequest, ModelNotFound, PermissionDenied
from .ingress.base import Ingress, StreamEncoder
from .routing.executor import AttemptLog, Completed, Streaming
from .runtime import Runtime
from .state import GatewayState
from .upstream import map_transport_error

log = logging.getLogger("aigw.pipeline")


def resolve_route(runtime: Runtime, tenant: TenantConfig, model: str) -> RouteConfig:
    route = runtime.routes_by_model.get(model)
    if route is None:
        raise ModelNotFound(f"The model '{model}' does not exist", param="model")
    if not runtime.may_use(tenant, route):
        raise PermissionDenied(f"this API key may not use the model '{model}'", param="model")
    return route


def _headers(route: RouteConfig, attempts: AttemptLog) -> dict[str, str]:
    target = attempts.target
    headers = {"x-aigw-route": route.name, "x-aigw-attempts": str(attempts.attempts)}
    if target is not None:
        headers["x-aigw-target"] = f"{target.credential}/{target.model}"
    return headers


async def chat(state: GatewayState, request: Request, ingress: Ingress, body: dict[str, Any], *,
               model: str | None = None, stream: bool | None = None) -> Response:
    runtime = state.runtime()
    tenant = authenticate(runtime, request.headers)
    canonical = ingress.parse_request(body, model=model, stream=stream)
    requested_model: str = canonical["model"]
    is_stream = bool(canonical.get("stream"))
    route = resolve_route(runtime, tenant, requested_model)
    attempts = AttemptLog()
    result = await state.executor.run(runtime, route, canonical, is_stream, attempts)
    headers = _headers(route, attempts)
    if isinstance(result, Completed):
        body_out = ingress.render_response(result.response, requested_model)
        return Response(orjson.dumps(body_out), media_type="application/json", headers=headers)
    encoder = ingress.stream_encoder(requested_model, canonical)
    request_id = request.scope.get("state", {}).get("request_id", "")
    headers.update({"cache-control": "no-cache", "x-accel-buffering": "no"})
    return StreamingResponse(_relay(result, encoder, request_id), media_type=ingress.stream_media_type, headers=headers)


async def embeddings(state: GatewayState, request: Request, body: dict[str, Any]) -> Response:
    runtime = state.runtime()
    tenant = authenticate(runtime, request.headers)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string", param="model")
    if not isinstance(body.get("input"), (str, list)) or not body["input"]:
        raise InvalidRequest("'input' is required: a string or an array", param="input")
    route = resolve_route(runtime, tenant, model)
    attempts = AttemptLog()
    result = await state.executor.run(runtime, route, body, False, attempts, operation="embeddings")
    assert isinstance(result, Completed)
    return Response(orjson.dumps(result.response), media_type="application/json", headers=_headers(route, attempts))


async def _relay(stream: Streaming, encoder: StreamEncoder, request_id: str) -> AsyncIterator[bytes]:
    label = f"{stream.target.credential}/{stream.target.model}"
    try:
        for chunk in stream.first:
            out = encoder.chunk(chunk)
            if out:
                yield out
        try:
            async for data in stream.rest:
                for chunk in stream.translator.feed(data):
                    out = encoder.chunk(chunk)
                    if out:
                        yield out
            for chunk in stream.translator.finish():
                out = encoder.chunk(chunk)
                if out:
                    yield out
        except GatewayError as err:
            log.warning("request %s: stream from %s failed after the first byte: %s", request_id, label, err.code)
            yield encoder.error(err, request_id)
            return
        except (httpx.HTTPError, TimeoutError) as exc:
            err = map_transport_error(exc, label)
            log.warning("request %s: stream from %s broke after the first byte: %s", request_id, label, err.code)
            yield encoder.error(err, request_id)
            return
        yield encoder.end()
    finally:
        await stream.close()
