"""In-process traffic statistics behind the pod report: cumulative counters and a sliding window.

Updated once per finished request (no per-chunk work); percentiles are computed only when the
report is read, from a bounded ring of recent samples.
"""

from __future__ import annotations

import time
from array import array
from dataclasses import dataclass, field

from aigw_config.report import RouteReport, TargetReport, TenantReport

WINDOW_SECONDS = 60.0
MAX_SAMPLES = 4096


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return round(sorted_values[index], 3)


class Series:
    """Counters and a ring of the last MAX_SAMPLES (time, latency, error) samples, kept in typed
    arrays: 17 bytes a sample instead of a tuple of two floats (about 110 bytes). At saturation a
    route and each of its targets hold a full ring, so this is megabytes per worker with a few
    routes under load; the arrays grow with use, so an idle route costs next to nothing."""

    __slots__ = ("total", "errors", "_at", "_ms", "_error", "_next")

    def __init__(self) -> None:
        self.total = 0
        self.errors = 0
        self._at = array("d")
        self._ms = array("d")
        self._error = bytearray()
        self._next = 0  # where the next sample goes once the ring is full

    def add(self, now: float, latency_ms: float, error: bool) -> None:
        self.total += 1
        self.errors += error
        if len(self._at) < MAX_SAMPLES:
            self._at.append(now)
            self._ms.append(latency_ms)
            self._error.append(error)
            return
        i = self._next
        self._at[i], self._ms[i], self._error[i] = now, latency_ms, error
        self._next = i + 1 if i + 1 < MAX_SAMPLES else 0

    def __len__(self) -> int:
        return len(self._at)

    def window(self, now: float, seconds: float) -> tuple[int, int, float | None, float | None]:
        since = now - seconds
        recent = [i for i, at in enumerate(self._at) if at >= since]
        latencies = sorted(self._ms[i] for i in recent if not self._error[i])
        errors = sum(self._error[i] for i in recent)
        return len(recent), errors, _percentile(latencies, 0.5), _percentile(latencies, 0.95)


@dataclass
class RouteStats:
    series: Series = field(default_factory=Series)
    fallbacks: int = 0
    retries: int = 0
    targets: dict[tuple[str, str], Series] = field(default_factory=dict)
    cache_hits: int = 0
    cache_misses: int = 0
    cache_saved_usd: float = 0.0


@dataclass
class TenantStats:
    requests: int = 0
    throttled: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class TrafficStats:
    def __init__(self, clock=time.time) -> None:
        self.clock = clock
        self.started_at = clock()
        self.routes: dict[str, RouteStats] = {}
        self.tenants: dict[str, TenantStats] = {}

    def route(self, name: str) -> RouteStats:
        stats = self.routes.get(name)
        if stats is None:
            stats = self.routes[name] = RouteStats()
        return stats

    def tenant(self, name: str) -> TenantStats:
        stats = self.tenants.get(name)
        if stats is None:
            stats = self.tenants[name] = TenantStats()
        return stats

    def attempt(self, route: str, credential: str, model: str, latency_ms: float, error: bool) -> None:
        targets = self.route(route).targets
        series = targets.get((credential, model))
        if series is None:
            series = targets[(credential, model)] = Series()
        series.add(self.clock(), latency_ms, error)

    def route_reports(self, circuit_of) -> list[RouteReport]:
        now = self.clock()
        out = []
        for name, stats in sorted(self.routes.items()):
            n, e, p50, p95 = stats.series.window(now, WINDOW_SECONDS)
            targets = []
            for (cred, model), series in sorted(stats.targets.items()):
                tn, te, t50, t95 = series.window(now, WINDOW_SECONDS)
                targets.append(TargetReport(
                    credential=cred, model=model, requests=series.total, errors=series.errors,
                    circuit=circuit_of(name, cred, model), window_requests=tn, window_errors=te,
                    latency_p50_ms=t50, latency_p95_ms=t95))
            out.append(RouteReport(
                name=name, requests=stats.series.total, errors=stats.series.errors, fallbacks=stats.fallbacks,
                retries=stats.retries, window_requests=n, window_errors=e, latency_p50_ms=p50, latency_p95_ms=p95,
                targets=tuple(targets), cache_hits=stats.cache_hits, cache_misses=stats.cache_misses,
                cache_saved_usd=round(stats.cache_saved_usd, 9)))
        return out

    def tenant_reports(self) -> list[TenantReport]:
        return [
            TenantReport(name=name, requests=s.requests, throttled=s.throttled, prompt_tokens=s.prompt_tokens,
                         completion_tokens=s.completion_tokens, cost_usd=round(s.cost_usd, 9))
            for name, s in sorted(self.tenants.items())
        ]
