"""Pure aggregation: the reports of a namespace's gateway pods -> what each object's status says.

Inputs are plain values (the rendered config, the ready endpoints, the reports that could be
read); the output is, per (kind, name), the live status fields and the Ready/Degraded
conditions. No I/O and no clock: `patch` turns observations into patches and events.

Rules (documented in aigw_config.status):
- SERVED is "pods on the current config generation / pods reporting".
- Rates come from the pods' sliding windows: requests per minute sum over pods; the error
  ratio is total failures over total requests; p95 is the highest pod's p95 (percentiles do
  not add up; the worst pod is the honest bound).
- Tenant usage read from a shared limiter (Redis) is the same on every pod: the freshest
  report counts. Without Redis every pod counts alone, and the pods' figures add up.
- An object served by several AIGateways of a namespace is reported by the first by name,
  the same rule that picks its Accepted verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from aigw_config.config import GatewayConfig, RouteConfig, TargetConfig, TenantConfig
from aigw_config.report import PodReport, RouteReport, TargetReport, TenantReport
from aigw_config.status import (
    DEGRADED,
    LEDGER_READY,
    READY,
    REASON_BUDGET_EXCEEDED,
    REASON_CIRCUIT_OPEN,
    REASON_CONFLICT,
    REASON_CONFIG_REJECTED,
    REASON_HEALTHY,
    REASON_HIGH_ERROR_RATE,
    REASON_NO_READY_PODS,
    REASON_NOT_SERVED,
    REASON_PODS_NOT_REPORTING,
    REASON_ROLLOUT_IN_PROGRESS,
    REASON_SERVING,
    STATUS_MODELS,
    Condition,
    ObjectStatus,
)

from .ledger import LedgerPolicy, observe_ledger

Key = tuple[str, str]  # (kind, name)
_CIRCUIT_RANK = {"closed": 0, "half-open": 1, "open": 2}


@dataclass(frozen=True)
class PodSample:
    """One pod's report, as read this round."""

    name: str
    report: PodReport


@dataclass(frozen=True)
class GatewayView:
    """Everything known about one AIGateway this round."""

    name: str
    replicas: int
    endpoint: str
    config: GatewayConfig | None  # the rendered config; None before the first render
    shared_limits: bool = False  # a Redis URL is configured: tenant usage is shared by the pods
    ready_pods: tuple[str, ...] = ()  # ready endpoints of the gateway Service
    pods: tuple[PodSample, ...] = ()  # the ready pods whose report could be read
    conflict: str | None = None  # the renderer's Conflict message: objects of its name are not its own
    ledger: LedgerPolicy | None = None  # spec.ledger: judge the usage ledger (LedgerReady)

    @property
    def generation(self) -> int | None:
        return self.config.generation if self.config else None

    @property
    def serving(self) -> int:
        return sum(1 for p in self.pods if p.report.generation is not None and p.report.generation == self.generation)

    @property
    def served(self) -> str:
        return f"{self.serving}/{len(self.pods)}"

    @cached_property
    def route_reports(self) -> list[tuple[PodSample, dict[str, RouteReport]]]:
        return [(p, {r.name: r for r in p.report.routes}) for p in self.pods]

    @cached_property
    def tenant_reports(self) -> list[tuple[PodSample, dict[str, TenantReport]]]:
        return [(p, {t.name: t for t in p.report.tenants}) for p in self.pods]


@dataclass(frozen=True)
class Thresholds:
    error_percent: float = 5.0  # Degraded/HighErrorRate at or above this error ratio...
    min_requests: int = 10  # ...over at least this many requests in the window


@dataclass
class Observation:
    """The live part of one object's status: fields (None removes one) and conditions."""

    fields: dict[str, Any]
    conditions: list[Condition]
    drop_conditions: tuple[str, ...] = ()


@dataclass
class _Window:
    requests: int = 0
    errors: int = 0
    per_minute: float = 0.0
    p95: float | None = None

    def add(self, window_requests: int, window_errors: int, window_seconds: float, p95: float | None) -> None:
        self.requests += window_requests
        self.errors += window_errors
        self.per_minute += window_requests * 60.0 / max(window_seconds, 1.0)
        if window_requests and p95 is not None:
            self.p95 = p95 if self.p95 is None else max(self.p95, p95)

    def merge(self, other: "_Window") -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.per_minute += other.per_minute
        if other.p95 is not None:
            self.p95 = other.p95 if self.p95 is None else max(self.p95, other.p95)

    @property
    def error_percent(self) -> float | None:
        return round(100.0 * self.errors / self.requests, 2) if self.requests else None

    def too_many_errors(self, th: Thresholds) -> bool:
        return self.requests >= th.min_requests and (self.error_percent or 0.0) >= th.error_percent

    def fields(self) -> dict[str, Any]:
        return {
            "requestsPerMinute": round(self.per_minute, 1),
            "errorPercent": self.error_percent,
            "latencyP95Ms": None if self.p95 is None else round(self.p95, 1),
        }


@dataclass
class _Target:
    config: TargetConfig
    window: _Window = field(default_factory=_Window)
    circuit: str = "closed"
    open_pods: int = 0
    known_pods: int = 0

    def health(self, pods: int, th: Thresholds) -> str:
        if not pods:
            return "Unknown"
        if self.known_pods and self.open_pods == self.known_pods and self.circuit == "open":
            return "Unhealthy"
        if self.open_pods or self.window.too_many_errors(th):
            return "Degraded"
        return "Healthy"

    def status(self, pods: int, th: Thresholds) -> dict[str, Any]:
        out = {
            "credential": self.config.credential,
            "model": self.config.model,
            "health": self.health(pods, th),
            "circuit": self.circuit,
            "openPods": self.open_pods,
            "requestsPerMinute": round(self.window.per_minute, 1),
        }
        if self.window.error_percent is not None:
            out["errorPercent"] = self.window.error_percent
        if self.window.p95 is not None:
            out["latencyP95Ms"] = round(self.window.p95, 1)
        return out


def _cond(type_: str, status: str, reason: str, message: str) -> Condition:
    return Condition(type=type_, status=status, reason=reason, message=message)


def _ready(view: GatewayView) -> Condition:
    reporting = len(view.pods)
    if view.generation is None:
        return _cond(READY, "False", REASON_ROLLOUT_IN_PROGRESS, f"AIGateway {view.name} has no rendered config yet")
    if not reporting:
        return _cond(READY, "False", REASON_NO_READY_PODS, f"no ready pod of AIGateway {view.name} reports")
    if view.serving < reporting:
        return _cond(READY, "False", REASON_ROLLOUT_IN_PROGRESS,
                     f"{view.served} pods serve config generation {view.generation}")
    return _cond(READY, "True", REASON_SERVING, f"{view.served} pods serve config generation {view.generation}")


def _no_pods(view: GatewayView) -> Condition:
    return _cond(DEGRADED, "Unknown", REASON_NO_READY_PODS, f"no ready pod of AIGateway {view.name} reports")


def _healthy(message: str = "no open circuits, error ratio below the threshold") -> Condition:
    return _cond(DEGRADED, "False", REASON_HEALTHY, message)


def _target_report(route: RouteReport, target: TargetConfig) -> TargetReport | None:
    return next((t for t in route.targets if t.credential == target.credential and t.model == target.model), None)


def _targets(view: GatewayView, route: RouteConfig) -> tuple[_Window, list[_Target]]:
    window = _Window()
    targets = [_Target(t) for t in route.targets]
    for pod, routes in view.route_reports:
        rr = routes.get(route.name)
        if rr is None:
            continue
        window.add(rr.window_requests, rr.window_errors, pod.report.window_seconds, rr.latency_p95_ms)
        for target in targets:
            tr = _target_report(rr, target.config)
            if tr is None:
                continue
            target.known_pods += 1
            target.window.add(tr.window_requests, tr.window_errors, pod.report.window_seconds, tr.latency_p95_ms)
            state = tr.circuit if tr.circuit in _CIRCUIT_RANK else "closed"
            if state != "closed":
                target.open_pods += 1
            if _CIRCUIT_RANK[state] > _CIRCUIT_RANK[target.circuit]:
                target.circuit = state
    return window, targets


def _degraded_by_traffic(view: GatewayView, window: _Window, targets: Sequence[_Target], th: Thresholds) -> Condition:
    if not view.pods:
        return _no_pods(view)
    opened = [t for t in targets if t.open_pods]
    if opened:
        return _cond(DEGRADED, "True", REASON_CIRCUIT_OPEN, "; ".join(
            f"circuit to {t.config.credential}/{t.config.model} is {t.circuit} on {t.open_pods}/{len(view.pods)} pods"
            for t in opened))
    if window.too_many_errors(th):
        return _cond(DEGRADED, "True", REASON_HIGH_ERROR_RATE,
                     f"{window.error_percent}% of {window.requests} requests in the report window failed")
    return _healthy()


RouteStats = dict[str, tuple[_Window, list[_Target]]]


def route_stats(view: GatewayView) -> RouteStats:
    return {route.name: _targets(view, route) for route in (view.config.routes if view.config else ())}


def observe_route(view: GatewayView, route: RouteConfig, th: Thresholds, stats: RouteStats | None = None) -> Observation:
    window, targets = (stats or {}).get(route.name) or _targets(view, route)
    pods = len(view.pods)
    fields = {"gateway": view.name, "served": view.served, **window.fields(),
              "targets": [t.status(pods, th) for t in targets], **_cache_fields(view, route)}
    return Observation(fields, [_ready(view), _degraded_by_traffic(view, window, targets, th)])


def _cache_fields(view: GatewayView, route: RouteConfig) -> dict[str, float]:
    """cacheHitRatio and savedUSD over every pod's report, for a route with a cache."""
    if route.cache is None:
        return {}
    reports = [routes[route.name] for _, routes in view.route_reports if route.name in routes]
    hits = sum(r.cache_hits for r in reports)
    lookups = hits + sum(r.cache_misses for r in reports)
    fields = {"savedUSD": round(sum(r.cache_saved_usd for r in reports), 9)}
    if lookups:
        fields["cacheHitRatio"] = round(hits / lookups, 4)
    return fields


def observe_credential(view: GatewayView, name: str, th: Thresholds, stats: RouteStats | None = None) -> Observation:
    assert view.config is not None
    stats = stats if stats is not None else route_stats(view)
    window = _Window()
    used: list[_Target] = []
    routes = 0
    for route in view.config.routes:
        if not any(t.credential == name for t in route.targets):
            continue
        routes += 1
        for target in stats[route.name][1]:
            if target.config.credential == name:
                used.append(target)
                window.merge(target.window)
    pods = len(view.pods)
    health = [t.health(pods, th) for t in used]
    if not pods:
        overall = "Unknown"
    elif health and all(h == "Unhealthy" for h in health):
        overall = "Unhealthy"
    elif any(h != "Healthy" for h in health) or window.too_many_errors(th):
        overall = "Degraded"
    else:
        overall = "Healthy"
    fields = {
        "gateway": view.name, "served": view.served, "health": overall, "routes": routes,
        "openCircuits": sum(1 for t in used if t.open_pods),
        "requestsPerMinute": round(window.per_minute, 1), "errorPercent": window.error_percent,
    }
    return Observation(fields, [_ready(view), _degraded_by_traffic(view, window, used, th)])


def _tenant_reports(view: GatewayView, name: str) -> list[tuple[PodReport, TenantReport]]:
    return [(pod.report, tenants[name]) for pod, tenants in view.tenant_reports if name in tenants]


def _sum(values: Iterable[float | int | None]) -> float | int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def observe_tenant(view: GatewayView, tenant: TenantConfig) -> Observation:
    reports = _tenant_reports(view, tenant.name)
    if view.shared_limits:
        # One limiter behind every pod: the freshest report is the truth.
        latest = max(reports, key=lambda pair: pair[0].now)[1] if reports else None
        requests = latest.requests_this_minute if latest else None
        tokens = latest.tokens_this_minute if latest else None
        spend = latest.spend_this_period_usd if latest else None
        remaining = latest.budget_remaining_usd if latest else None
        period_start = latest.period_start if latest else None
    else:
        requests = _sum(t.requests_this_minute for _, t in reports)
        tokens = _sum(t.tokens_this_minute for _, t in reports)
        spend = _sum(t.spend_this_period_usd for _, t in reports)
        remaining = None
        starts = [t.period_start for _, t in reports if t.period_start]
        period_start = max(starts) if starts else None
    budget = tenant.budget
    if budget is not None and remaining is None and spend is not None:
        remaining = max(budget.amount - spend, 0.0)
    fields = {
        "gateway": view.name, "served": view.served,
        "requestsThisMinute": requests, "tokensThisMinute": tokens,
        "spendThisPeriod": None if spend is None else round(float(spend), 6),
        "budgetRemaining": None if remaining is None or budget is None else round(float(remaining), 6),
        "periodStart": period_start,
        "throttledRequests": sum(t.throttled for _, t in reports) if reports else None,
    }
    if not view.pods:
        degraded = _no_pods(view)
    elif budget is not None and spend is not None and (remaining is not None and remaining <= 0 or spend >= budget.amount):
        action = "blocked" if budget.on_exceeded == "block" else "served with a warning (onExceeded: warn)"
        degraded = _cond(DEGRADED, "True", REASON_BUDGET_EXCEEDED,
                         f"spent {spend:.6f} of {budget.amount:g} {budget.currency} this {budget.period} period; "
                         f"requests are {action}")
    else:
        degraded = _healthy("within limits and budget")
    return Observation(fields, [_ready(view), degraded])


def observe_guardrail(view: GatewayView, name: str) -> Observation:
    matches: dict[str, int] = {}
    for pod in view.pods:
        for policy in pod.report.guardrails:
            if policy.policy == name:
                for key, count in policy.counts.items():
                    matches[key] = matches.get(key, 0) + int(count)
    fields = {"gateway": view.name, "served": view.served, "matches": dict(sorted(matches.items())),
              "totalMatches": sum(matches.values())}
    return Observation(fields, [_ready(view)])


def observe_gateway(view: GatewayView) -> Observation:
    pods = sorted(view.pods, key=lambda p: p.name)
    fields = {
        "replicas": view.replicas,
        "readyReplicas": len(view.ready_pods),
        "reportingPods": len(pods),
        "served": view.served,
        "endpoint": view.endpoint,
        "pods": [{"name": p.name, **({"generation": p.report.generation} if p.report.generation is not None else {}),
                  **({"configError": p.report.last_config_error} if _rejects(view, p) else {})} for p in pods],
    }
    ready = _ready(view)
    if view.conflict is not None:  # nothing of it is written while another owner's objects stand
        ready = _cond(READY, "False", REASON_CONFLICT, view.conflict)
    elif ready.status == "True" and len(view.ready_pods) < view.replicas:
        ready = _cond(READY, "False", REASON_ROLLOUT_IN_PROGRESS,
                      f"{len(view.ready_pods)}/{view.replicas} replicas ready; {view.served} pods serve "
                      f"config generation {view.generation}")
    rejecting = [p for p in pods if _rejects(view, p)]
    silent = sorted(set(view.ready_pods) - {p.name for p in pods})
    if rejecting:
        degraded = _cond(DEGRADED, "True", REASON_CONFIG_REJECTED, "; ".join(
            f"{p.name} refuses config generation {view.generation} and serves {p.report.generation}: "
            f"{p.report.last_config_error}" for p in rejecting))
    elif silent:
        degraded = _cond(DEGRADED, "True", REASON_PODS_NOT_REPORTING,
                         f"ready pods that do not answer the report request: {', '.join(silent)}")
    elif not pods:
        degraded = _no_pods(view)
    else:
        degraded = _healthy("every ready pod reports")
    ledger_ready, fields["ledger"] = observe_ledger(view.name, view.ledger, [p.report for p in pods])
    if ledger_ready is None:
        return Observation(fields, [ready, degraded], drop_conditions=(LEDGER_READY,))
    return Observation(fields, [ready, degraded, ledger_ready])


def _rejects(view: GatewayView, pod: PodSample) -> bool:
    # An error on a pod that serves the current generation is about an older attempt.
    return bool(pod.report.last_config_error) and pod.report.generation != view.generation


def live_fields(kind: str) -> tuple[str, ...]:
    """The status fields the aggregator owns for a content kind (camelCase)."""
    model = STATUS_MODELS[kind]
    return tuple(f.alias or name for name, f in model.model_fields.items() if name not in ObjectStatus.model_fields)


def not_served(kind: str) -> Observation:
    return Observation({f: None for f in live_fields(kind)},
                       [_cond(READY, "False", REASON_NOT_SERVED, "not in the config of any AIGateway")],
                       drop_conditions=(DEGRADED,))


def observe_namespace(views: Sequence[GatewayView], objects: dict[str, Iterable[str]],
                      th: Thresholds = Thresholds()) -> dict[Key, Observation]:
    """Observations for every AIGateway in `views` and every object named in `objects` (kind -> names)."""
    out: dict[Key, Observation] = {}
    for view in sorted(views, key=lambda v: v.name):
        out[("AIGateway", view.name)] = observe_gateway(view)
        config = view.config
        if config is None:
            continue
        stats = route_stats(view)
        for route in config.routes:
            if ("ModelRoute", route.name) not in out:
                out[("ModelRoute", route.name)] = observe_route(view, route, th, stats)
        for provider in config.providers:
            if ("ProviderCredential", provider.name) not in out:
                out[("ProviderCredential", provider.name)] = observe_credential(view, provider.name, th, stats)
        for tenant in config.tenants:
            if ("TenantQuota", tenant.name) not in out:
                out[("TenantQuota", tenant.name)] = observe_tenant(view, tenant)
        for policy in config.guardrails:
            if ("GuardrailPolicy", policy) not in out:
                out[("GuardrailPolicy", policy)] = observe_guardrail(view, policy)
    for kind, names in objects.items():
        for name in names:
            out.setdefault((kind, name), not_served(kind))
    return out
