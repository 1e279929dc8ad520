"""Assemble the gateway app: routers, middleware, and the lifespan that runs the config source."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from .api import anthropic, gemini, health, internal, openai
from .config_source import DirSource, FileSource
from .errors import GatewayError, MethodNotAllowed, NotFound
from .logs import configure_logging
from .middleware.request_context import RequestContextMiddleware
from .middleware.tracing import TracingMiddleware
from .settings import SETTINGS_ENV, Settings, settings_from_json
from .telemetry.tracing import configure_from_env
from .state import GatewayState
from .upstream import create_client

log = logging.getLogger("aigw")


def _make_source(state: GatewayState):
    settings = state.settings
    if settings.files:
        return FileSource(list(settings.files), state.holder, settings.namespace, settings.poll_interval)
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
        if runtime is not None:
            state.limiter.fail_mode = runtime.config.settings.redis_fail_mode
        await asyncio.sleep(0.2)


def create_app(settings: Settings) -> FastAPI:
    state = GatewayState(settings=settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_from_env()
        state.start(create_client())
        await state.use_redis(settings.redis_url)
        source = _make_source(state)
        if not settings.redis_url:
            log.warning("no --redis-url/AIGW_REDIS_URL: limits are kept in memory, for this single process only")
        tasks = [asyncio.create_task(source.run(), name="config-source"), asyncio.create_task(_follow_config(state))]
        try:
            yield
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
    app.include_router(anthropic.router)
    app.include_router(gemini.router)
    app.include_router(internal.router)

    async def http_exception(request: Request, exc: StarletteHTTPException) -> Response:
        err: GatewayError
        if exc.status_code == 405:
            err = MethodNotAllowed(f"method {request.method} is not allowed on {request.url.path}")
        else:
            err = NotFound(f"no such endpoint: {request.method} {request.url.path}")
        err.status_code = exc.status_code
        raise err

    app.add_exception_handler(StarletteHTTPException, http_exception)
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(TracingMiddleware)  # outermost: the span covers error rendering too
    return app


def app_from_env() -> FastAPI:
    """The app of one worker process of `aigw serve --workers N` (settings passed by the parent)."""
    settings = settings_from_json(os.environ[SETTINGS_ENV])
    configure_logging(settings.log_level)
    return create_app(settings)
