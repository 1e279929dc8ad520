"""/metrics (Prometheus) and /internal/report (the pod report the operator aggregates).

Served on the ops port only (`aigw serve --ops-port`, default 9090): the API port answers 404 for
both, so tenants never see other tenants' names, traffic or budgets.

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

from aigw_config.report import GuardrailReport, LedgerReport, PodReport, TenantReport

from ..errors import AuthenticationFailed, GatewayError, NotFound
from ..telemetry import metrics
from .common import state_of

router = APIRouter()


@router.get("/metrics")
async def prometheus(request: Request) -> Response:
    state = state_of(request)
    state.recorder.refresh_gauges()
    state.recorder.export_guardrails(state.guardrail_counts())
    state.recorder.export_limiter(state.limiter)
    runtime = state.holder.current
    if runtime is not None:
        metrics.CONFIG_GENERATION.set(runtime.generation)
        await state.budget_gauges.refresh(state.settings.metrics_refresh_seconds, runtime.config.tenants,
                                          state.limiter, metrics.BUDGET_REMAINING)
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)


async def tenant_reports(state, runtime) -> tuple[TenantReport, ...]:
    """This pod's counters per tenant, with the shared window and budget state from the limiter
    (the same on every pod when Redis is used). Every configured tenant appears, traffic or not."""
    local = {t.name: t for t in state.stats.tenant_reports()}
    out = []
    for tenant in (runtime.config.tenants if runtime else ()):
        report = local.pop(tenant.name, None) or TenantReport(name=tenant.name)
        try:
            usage = await state.limiter.usage(tenant)
        except GatewayError:  # limits store away: the shared fields stay unknown
            out.append(report)
            continue
        budget = usage.get("budget") or {}
        out.append(report.model_copy(update={
            "requests_this_minute": usage["requests"]["used"],
            "tokens_this_minute": usage["tokens"]["used"],
            "spend_this_period_usd": budget.get("spend_usd"),
            "budget_remaining_usd": budget.get("remaining_usd"),
            "period_start": budget.get("period_start"),
        }))
    out.extend(local.values())  # tenants that left the config but had traffic on this pod
    return tuple(out)


async def _ledger_report(state) -> LedgerReport | None:
    if not state.settings.ledger_url:
        return None
    from ..ledger.service import ledger_report  # psycopg is imported only by a gateway with a ledger

    return await ledger_report(state)


async def build_report(request: Request) -> PodReport:
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
        tenants=await tenant_reports(state, runtime),
        guardrails=tuple(GuardrailReport(policy=p, counts=c) for p, c in sorted(guardrails.items())),
        ledger=await _ledger_report(state),
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
    return Response(orjson.dumps((await build_report(request)).model_dump(mode="json", by_alias=True)),
                    media_type="application/json")
