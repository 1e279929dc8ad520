"""Probes: /healthz (the process lives) and /readyz (a config is loaded; what it is)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from .common import state_of

router = APIRouter()


def _json(data: dict, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


@router.get("/healthz")
async def healthz() -> Response:
    return _json({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    state = state_of(request)
    runtime = state.holder.current
    redis = await state.redis.ping()
    if runtime is None:
        return _json({"status": "not ready", "reason": state.holder.last_error or "no config loaded yet", "redis": redis}, 503)
    wanted = state.settings.redis_url or runtime.redis_url
    if wanted != state.limits_url:
        return _json({"status": "not ready", "reason": "limits store is switching to the configured Redis", "redis": redis}, 503)
    body = {
        "status": "ready",
        "generation": runtime.generation,
        "hash": runtime.config.hash,
        "routes": len(runtime.config.routes),
        "tenants": len(runtime.config.tenants),
        "redis": redis,
        "limits": "redis" if state.limits_url else "memory",
    }
    if state.holder.last_error:
        body["lastError"] = state.holder.last_error
    return _json(body)
