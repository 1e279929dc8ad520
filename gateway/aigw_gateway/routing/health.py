"""Per-target health: a circuit breaker and a latency moving average.

Keyed by (route, credential, upstream model) names, so health survives config swaps that keep
the target. Single event loop: no locks needed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aigw_config.config import CircuitBreakerPolicy, RouteConfig, TargetConfig

CLOSED, HALF_OPEN, OPEN = "closed", "half-open", "open"
EWMA_ALPHA = 0.2


@dataclass
class TargetHealth:
    state: str = CLOSED
    consecutive_failures: int = 0
    opened_at: float = 0.0
    probe_in_flight: bool = False
    latency_ewma: float | None = None
    successes: int = 0
    failures: int = 0
    transitions: list[tuple[float, str]] = field(default_factory=list)

    def allow(self, policy: CircuitBreakerPolicy, now: float) -> bool:
        if self.state == CLOSED:
            return True
        if self.state == OPEN and now - self.opened_at >= policy.open_seconds:
            self._move(HALF_OPEN, now)
        if self.state == HALF_OPEN and not self.probe_in_flight:
            self.probe_in_flight = True  # exactly one probe decides
            return True
        return False

    def blocked(self, policy: CircuitBreakerPolicy, now: float) -> bool:
        """Whether `allow` would refuse now (without claiming the half-open probe)."""
        if self.state == CLOSED:
            return False
        if self.state == OPEN:
            return now - self.opened_at < policy.open_seconds
        return self.probe_in_flight

    def success(self, latency: float, now: float) -> None:
        self.successes += 1
        self.consecutive_failures = 0
        self.probe_in_flight = False
        self.latency_ewma = latency if self.latency_ewma is None else (
            EWMA_ALPHA * latency + (1 - EWMA_ALPHA) * self.latency_ewma
        )
        if self.state != CLOSED:
            self._move(CLOSED, now)

    def failure(self, policy: CircuitBreakerPolicy, now: float) -> None:
        self.failures += 1
        self.consecutive_failures += 1
        was_probe, self.probe_in_flight = self.probe_in_flight, False
        if self.state == HALF_OPEN and was_probe or (
            self.state == CLOSED and self.consecutive_failures >= policy.consecutive_failures
        ):
            self.opened_at = now
            self._move(OPEN, now)

    def release(self) -> None:
        """The attempt ended without a verdict on the target (e.g. the client went away)."""
        self.probe_in_flight = False

    def _move(self, state: str, now: float) -> None:
        self.state = state
        self.transitions.append((now, state))
        del self.transitions[:-20]


class HealthRegistry:
    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self._targets: dict[tuple[str, str, str], TargetHealth] = {}

    def of(self, route: RouteConfig, target: TargetConfig) -> TargetHealth:
        key = (route.name, target.credential, target.model)
        health = self._targets.get(key)
        if health is None:
            health = self._targets[key] = TargetHealth()
        return health

    def snapshot(self) -> dict[tuple[str, str, str], TargetHealth]:
        return dict(self._targets)
