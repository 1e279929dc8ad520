"""Assemble the gateway app: routers, middleware, and the lifespan that runs the config source."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from . import http_limits
from .api import anthropic, gemini, health, internal, models, openai, routes, usage_history
from .api import responses as responses_api
from .config_source import DirSource, FileSource
from .gc_tuning import tune_for_serving
from .errors import GatewayError, InternalError, MethodNotAllowed, NotFound, render_error
from .ledger.service import gateway_ledger
from .logs import configure_logging
from .middleware.request_context import RequestContextMiddleware, error_format_for
from .middleware.fast_lane import FastLane
from .middleware.ops_port import OpsPortSplit
from .middleware.tracing import TracingMiddleware
from starlette.types import ASGIApp
from .settings import SETTINGS_ENV, Settings, settings_from_json
from .telemetry.tracing import configure_from_env
from .telemetry.tracing import enabled as tracing_enabled
from .state import GatewayState
from .upstream import UpstreamClient

log = logging.getLogger("aigw")


def http_limits_of(settings: Settings) -> http_limits.HttpLimits:
    return http_limits.HttpLimits(max_header_bytes=settings.max_header_bytes, max_header_count=settings.max_header_count,
                                  header_timeout=settings.header_timeout, body_timeout=settings.body_timeout)


def _make_source(state: GatewayState):
    settings = state.settings
    if settings.files:
        return FileSource(list(settings.files), state.holder, settings.namespace, settings.poll_interval,
                          Path(settings.state_dir) if settings.state_dir else None)
    if settings.config_dir:
        return DirSource(settings.config_dir, state.holder, max(settings.poll_interval, 0.5))
    if settings.kube:
        from .kube_source import KubeSource

        return KubeSource(settings.kube, state.holder)
    raise ValueError("no config source: give files, a config directory or a ConfigMap/Secret")


async def _follow_config(state: GatewayState) -> None:
    """Apply what the loaded config decides outside the request path: the Redis URL (--redis-url
    wins over the AIGateway's) and the Redis fail mode. Re-checked every 0.2 s."""
    while True:
        runtime = state.holder.current
        url = state.settings.redis_url or (runtime.redis_url if runtime else None)
        await state.redis.use(url)
        await state.use_redis(url)
        state.prepare_cache()  # a route with a cache: its Redis client now, not in a request
        if runtime is not None:
            state.limiter.fail_mode = runtime.config.settings.redis_fail_mode
        await state.limiter.renew_leases()  # concurrency slots of this pod's requests in flight
        await asyncio.sleep(0.2)


def create_app(settings: Settings) -> ASGIApp:
    state = GatewayState(settings=settings)

    configure_from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.start(UpstreamClient(), tracing=tracing_enabled())
        await state.use_redis(settings.redis_url)
        source = _make_source(state)
        if not settings.redis_url:
            log.warning("no --redis-url/AIGW_REDIS_URL: limits are kept in memory, for this single process only")
        tasks = [asyncio.create_task(source.run(), name="config-source"), asyncio.create_task(_follow_config(state))]
        try:
            async with gateway_ledger(state):
                try:
                    yield
                finally:  # queued settlements (and their ledger events) go out before the ledger drains
                    await state.limiter.flush_for_shutdown()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await state.client.aclose()
            await state.redis.close()
            await state.use_redis(None)

    app = FastAPI(title="aigw gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gateway = state
    app.include_router(health.router)
    app.include_router(openai.router)
    app.include_router(usage_history.router)
    app.include_router(models.router)
    app.include_router(anthropic.router)
    app.include_router(gemini.router)
    app.include_router(responses_api.router)
    ops = FastAPI(title="aigw gateway ops", docs_url=None, redoc_url=None, openapi_url=None)
    ops.state.gateway = state
    ops.include_router(internal.router)
    ops.include_router(health.router)

    def error_response(request: Request, err: GatewayError) -> Response:
        request_id = request.scope.get("state", {}).get("request_id", "")
        body = render_error(err, request_id, error_format_for(request.url.path))
        return Response(body, status_code=err.status_code, media_type="application/json", headers=err.headers)

    async def gateway_error(request: Request, exc: GatewayError) -> Response:
        return error_response(request, exc)

    async def http_exception(request: Request, exc: StarletteHTTPException) -> Response:
        err: GatewayError
        if exc.status_code == 405:
            err = MethodNotAllowed(f"method {request.method} is not allowed on {request.url.path}")
        else:
            err = NotFound(f"no such endpoint: {request.method} {request.url.path}")
        err.status_code = exc.status_code
        return error_response(request, err)

    async def unexpected(request: Request, exc: Exception) -> Response:
        request_id = request.scope.get("state", {}).get("request_id", "")
        if isinstance(exc, ClientDisconnect):  # nobody to answer: logged once by RequestContextMiddleware
            raise exc
        log.error("request %s failed with an unexpected error", request_id, exc_info=exc)
        return error_response(request, InternalError("internal error; see the gateway log for this request id"))

    # FastAPI's own routes (probes, /metrics, model lists) render errors here, inside its
    # ServerErrorMiddleware; the fast lane's errors reach RequestContextMiddleware.
    for fastapi_app in (app, ops):
        fastapi_app.add_exception_handler(GatewayError, gateway_error)
        fastapi_app.add_exception_handler(StarletteHTTPException, http_exception)
        fastapi_app.add_exception_handler(Exception, unexpected)
    lane = FastLane(app, routes.EXACT, routes.PREFIXES)
    # Outermost first: the span covers error rendering; every response gets a request id.
    inner = RequestContextMiddleware(lane, access_log=settings.access_log)
    api = TracingMiddleware(inner) if tracing_enabled() else inner
    return OpsPortSplit(api, RequestContextMiddleware(ops), settings.ops_port) if settings.ops_port else api


def app_from_env() -> ASGIApp:
    """The app of one worker process of `aigw serve --workers N` (settings passed by the parent)."""
    settings = settings_from_json(os.environ[SETTINGS_ENV])
    configure_logging(settings.log_level)
    http_limits.configure(http_limits_of(settings))
    app = create_app(settings)
    tune_for_serving()  # a serving worker: see gc_tuning.py
    return app
