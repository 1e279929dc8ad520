"""/metrics (Prometheus) and /internal/report (the pod report the operator aggregates).

The report needs `Authorization: Bearer <report token>` (the rendered credentials' reportToken,
or --report-token): tenants calling the public API cannot read other tenants' usage.
"""

from __future__ import annotations

import hmac
import time

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from aigw_config.report import GuardrailReport, PodReport

from ..errors import AuthenticationFailed, NotFound
from ..telemetry import metrics
from .common import state_of

router = APIRouter()


@router.get("/metrics")
async def prometheus(request: Request) -> Response:
    state = state_of(request)
    state.recorder.refresh_gauges()
    state.recorder.export_guardrails(state.guardrail_counts())
    if state.holder.current is not None:
        metrics.CONFIG_GENERATION.set(state.holder.current.generation)
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)


def build_report(request: Request) -> PodReport:
    state = state_of(request)
    runtime = state.holder.current
    health = state.health

    def circuit_of(route: str, credential: str, model: str) -> str:
        for (r, c, m), h in health.snapshot().items():
            if (r, c, m) == (route, credential, model):
                return h.state
        return "closed"

    guardrails = getattr(state, "guardrail_counts", lambda: {})()
    return PodReport(
        pod=state.settings.pod_name,
        started_at=state.stats.started_at,
        now=time.time(),
        generation=runtime.generation if runtime else None,
        hash=runtime.config.hash if runtime else None,
        last_config_error=state.holder.last_error,
        routes=tuple(state.stats.route_reports(circuit_of)),
        tenants=tuple(state.stats.tenant_reports()),
        guardrails=tuple(GuardrailReport(policy=p, counts=c) for p, c in sorted(guardrails.items())),
    )


@router.get("/internal/report")
async def report(request: Request) -> Response:
    state = state_of(request)
    runtime = state.holder.current
    token = state.settings.report_token or (runtime.report_token if runtime else None)
    if not token:
        raise NotFound("the pod report is disabled: no report token configured")
    auth = request.headers.get("authorization", "")
    if not hmac.compare_digest(auth.encode(), f"Bearer {token}".encode()):
        raise AuthenticationFailed("the pod report needs the report token")
    return Response(orjson.dumps(build_report(request).model_dump(mode="json", by_alias=True)),
                    media_type="application/json")
