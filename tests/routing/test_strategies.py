"""Target order per strategy, and the circuit breaker's state machine."""

from __future__ import annotations

import random
from collections import Counter

from aigw_config.config import CircuitBreakerPolicy, RouteConfig, TargetConfig
from aigw_config.kinds import Pricing
from aigw_gateway.routing.health import CLOSED, HALF_OPEN, OPEN, HealthRegistry, TargetHealth
from aigw_gateway.routing.strategies import order_targets


def target(name, priority=0, weight=1, price=None):
    pricing = Pricing(input_per_million=price, output_per_million=price) if price is not None else None
    return TargetConfig(credential=name, model="m", priority=priority, weight=weight, pricing=pricing)


def route(strategy, *targets):
    return RouteConfig(name="r", model="m", strategy=strategy, targets=targets)


def names(ts):
    return [t.credential for t in ts]


def test_priority_groups_come_first_in_declared_order():
    r = route("priority", target("b", 1), target("a", 0), target("c", 0))
    assert names(order_targets(r, HealthRegistry())) == ["a", "c", "b"]


def test_weighted_draws_in_proportion():
    r = route("weighted", target("a", weight=3), target("b", weight=1), target("z", weight=0))
    rng = random.Random(7)
    firsts = Counter(names(order_targets(r, HealthRegistry(), rng))[0] for _ in range(4000))
    assert 0.70 < firsts["a"] / 4000 < 0.80 and firsts["z"] == 0
    assert names(order_targets(r, HealthRegistry(), rng))[-1] == "z"  # weight 0: only as a last resort


def test_least_latency_prefers_fast_and_measures_unknown():
    health = HealthRegistry()
    r = route("least-latency", target("slow"), target("fast"), target("new"))
    health.of(r, r.targets[0]).success(0.9, 0)
    health.of(r, r.targets[1]).success(0.1, 0)
    assert names(order_targets(r, health)) == ["new", "fast", "slow"]


def test_lowest_cost_within_priority():
    r = route("lowest-cost", target("pricey", price=10), target("cheap", price=1), target("backup", 1, price=0.1))
    assert names(order_targets(r, HealthRegistry())) == ["cheap", "pricey", "backup"]


def test_breaker_opens_half_opens_and_closes():
    policy = CircuitBreakerPolicy(consecutive_failures=3, open_seconds=10)
    h = TargetHealth()
    for t in range(3):
        assert h.allow(policy, t)
        h.failure(policy, t)
    assert h.state == OPEN and not h.allow(policy, 5)
    assert h.allow(policy, 13) and h.state == HALF_OPEN  # one probe...
    assert not h.allow(policy, 13)  # ...and only one
    h.failure(policy, 14)
    assert h.state == OPEN and not h.allow(policy, 20)
    assert h.allow(policy, 24)
    h.success(0.05, 24)
    assert h.state == CLOSED and h.allow(policy, 24)
    assert [s for _, s in h.transitions] == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]


def test_success_resets_the_failure_count():
    policy = CircuitBreakerPolicy(consecutive_failures=2, open_seconds=1)
    h = TargetHealth()
    h.failure(policy, 0)
    h.success(0.1, 0)
    h.failure(policy, 0)
    assert h.state == CLOSED
