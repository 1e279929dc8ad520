"""Send one chat request along a route: try targets in order, fall back on retryable failures.

Streaming responses are relayed chunk by chunk as they arrive. The first chunk is awaited
(bounded by the route's first-byte timeout) before the client's response starts, so a target
that accepts the connection and then stalls is failed over instead of hanging the client.
Once bytes reached the client, an upstream failure ends the stream with an error event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
from starlette.responses import Response, StreamingResponse

from aigw_config.config import RouteConfig, TargetConfig

from .errors import GatewayError, UpstreamBadResponse, UpstreamError
from .providers import adapter_for
from .providers.base import ProviderAdapter, UpstreamRequest
from .routing import plan
from .runtime import Runtime
from .upstream import map_transport_error

log = logging.getLogger("aigw.proxy")


async def chat(
    client: httpx.AsyncClient,
    runtime: Runtime,
    route: RouteConfig,
    payload: dict[str, Any],
    stream: bool,
    request_id: str,
) -> Response:
    last_error: GatewayError | None = None
    for target in plan(route):
        provider = runtime.providers[target.credential]
        adapter = adapter_for(provider.provider)
        label = f"{target.credential}/{target.model}"
        if adapter is None:
            last_error = UpstreamError(f"provider type {provider.provider!r} of {target.credential} is not supported yet")
            continue
        request = adapter.chat_request(
            provider, runtime.provider_keys.get(target.credential), target.model, payload, stream
        )
        headers = {"x-aigw-route": route.name, "x-aigw-target": label}
        try:
            if stream:
                return await _stream(client, adapter, request, route, label, headers, request_id)
            return await _unary(client, adapter, request, route, label, headers)
        except GatewayError as err:
            last_error = err
            if not err.retryable:
                raise
            log.info("request %s: target %s failed (%s); trying the next target", request_id, label, err.code)
    assert last_error is not None
    raise last_error


def _httpx_request(client: httpx.AsyncClient, request: UpstreamRequest, route: RouteConfig) -> httpx.Request:
    timeouts = route.timeouts
    return client.build_request(
        request.method,
        request.url,
        headers=request.headers,
        content=request.content,
        timeout=httpx.Timeout(timeouts.request_seconds, connect=min(timeouts.first_byte_seconds, 10.0)),
    )


async def _unary(
    client: httpx.AsyncClient,
    adapter: ProviderAdapter,
    request: UpstreamRequest,
    route: RouteConfig,
    label: str,
    headers: dict[str, str],
) -> Response:
    try:
        async with asyncio.timeout(route.timeouts.request_seconds):
            resp = await client.send(_httpx_request(client, request, route))
    except (httpx.HTTPError, TimeoutError) as exc:
        raise map_transport_error(exc, label) from None
    if not 200 <= resp.status_code < 300:
        raise adapter.error_for(resp.status_code, resp.content, dict(resp.headers), label)
    body = adapter.chat_response(resp.status_code, resp.content, label)
    return Response(body, status_code=200, media_type="application/json", headers=headers)


async def _stream(
    client: httpx.AsyncClient,
    adapter: ProviderAdapter,
    request: UpstreamRequest,
    route: RouteConfig,
    label: str,
    headers: dict[str, str],
    request_id: str,
) -> Response:
    resp: httpx.Response | None = None
    try:
        async with asyncio.timeout(route.timeouts.first_byte_seconds):
            resp = await client.send(_httpx_request(client, request, route), stream=True)
            if not 200 <= resp.status_code < 300:
                body = await resp.aread()
                raise adapter.error_for(resp.status_code, body, dict(resp.headers), label)
            chunks = resp.aiter_bytes()
            first = await anext(chunks, b"")
            if not first:
                raise UpstreamBadResponse(f"upstream {label} closed the stream without sending anything")
    except GatewayError:
        if resp is not None:
            await resp.aclose()
        raise
    except (httpx.HTTPError, TimeoutError) as exc:
        if resp is not None:
            await resp.aclose()
        raise map_transport_error(exc, label) from None

    async def relay() -> AsyncIterator[bytes]:
        try:
            yield first
            async for chunk in chunks:
                yield chunk
        except (httpx.HTTPError, TimeoutError) as exc:
            err = map_transport_error(exc, label)
            log.warning("request %s: stream from %s broke after the first byte: %s", request_id, label, err.code)
            yield b"data: " + _stream_error(err, request_id) + b"\n\n"
        finally:
            await resp.aclose()

    media_type = resp.headers.get("content-type", "text/event-stream")
    headers = {**headers, "cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(relay(), status_code=200, media_type=media_type, headers=headers)


def _stream_error(err: GatewayError, request_id: str) -> bytes:
    return orjson.dumps(
        {"error": {"message": err.message, "type": err.type, "param": None, "code": err.code, "request_id": request_id}}
    )
