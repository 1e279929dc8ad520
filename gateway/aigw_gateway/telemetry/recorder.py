"""One place where a finished request or attempt becomes stats, metrics and spans."""

from __future__ import annotations

from typing import Any

from aigw_config.config import RouteConfig, TargetConfig

from ..routing.health import HealthRegistry
from . import metrics
from .stats import TrafficStats


class Recorder:
    def __init__(self, stats: TrafficStats, health: HealthRegistry) -> None:
        self.stats = stats
        self.health = health
        self._exported: dict[tuple[str, str], int] = {}

    def attempt(self, route: RouteConfig, target: TargetConfig, provider_type: str, seconds: float,
                error_code: str | None, operation: str) -> None:
        self.stats.attempt(route.name, target.credential, target.model, seconds * 1000, error_code is not None)
        metrics.operation_duration_of(operation, provider_type, target.model, error_code or "").observe(seconds)

    def first_token(self, target: TargetConfig, provider_type: str, seconds: float) -> None:
        metrics.first_token_of("chat", provider_type, target.model).observe(seconds)

    def request(self, *, route: str, target: str, tenant: str, status: int, seconds: float,
                fallbacks: int = 0, retries: int = 0, retried_target: str = "", failed: bool = False) -> None:
        metrics.requests_of(route, target, tenant, str(status)).inc()
        if route != "-":
            metrics.request_duration_of(route, target).observe(seconds)
            stats = self.stats.route(route)
            stats.series.add(self.stats.clock(), seconds * 1000, failed)
            stats.fallbacks += fallbacks
            stats.retries += retries
            if fallbacks:
                metrics.FALLBACKS.labels(route).inc(fallbacks)
            if retries:
                metrics.RETRIES.labels(route, retried_target).inc(retries)
        if tenant != "-":
            self.stats.tenant(tenant).requests += 1

    def usage(self, *, tenant: str, route: str, provider_type: str, model: str, usage: dict[str, Any] | None,
              cost_usd: float, operation: str = "chat") -> None:
        if not usage:
            return
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        metrics.token_usage_of(operation, provider_type, model, "input").observe(prompt)
        metrics.token_usage_of(operation, provider_type, model, "output").observe(completion)
        stats = self.stats.tenant(tenant)
        stats.prompt_tokens += prompt
        stats.completion_tokens += completion
        if cost_usd:
            stats.cost_usd += cost_usd
            metrics.cost_of(tenant, route).inc(cost_usd)

    def cache(self, route: str, result: str, saved_usd: float) -> None:
        """A cache lookup's outcome (hit or miss) for the pod report; metrics count it where it happens."""
        stats = self.stats.route(route)
        if result == "hit":
            stats.cache_hits += 1
            stats.cache_saved_usd += saved_usd
        elif result == "miss":
            stats.cache_misses += 1

    def throttled(self, tenant: str, kind: str) -> None:
        self.stats.tenant(tenant).throttled += 1
        metrics.RATELIMIT_REJECTIONS.labels(tenant, kind).inc()

    def export_guardrails(self, counts: dict[str, dict[str, int]]) -> None:
        """Counters kept by the compiled policies -> aigw_guardrail_actions_total (at scrape time)."""
        for policy, by_key in counts.items():
            for key, total in by_key.items():
                detector, _, action = key.rpartition("/")
                seen = self._exported.get((policy, key), 0)
                if total > seen:
                    metrics.GUARDRAIL_ACTIONS.labels(policy, detector, action).inc(total - seen)
                    self._exported[(policy, key)] = total

    def export_limiter(self, limiter) -> None:
        seen = self._exported.get(("limits", "failOpen"), 0)
        if limiter.fail_open_total > seen:
            metrics.LIMITS_FAIL_OPEN.inc(limiter.fail_open_total - seen)
            self._exported[("limits", "failOpen")] = limiter.fail_open_total

    def refresh_gauges(self) -> None:
        """At scrape time: circuit states (no hot-path cost)."""
        for (route, cred, model), h in self.health.snapshot().items():
            metrics.CIRCUIT_STATE.labels(route, f"{cred}/{model}").set(metrics.CIRCUIT_VALUES[h.state])
