"""The order in which a request tries a route's targets.

Targets are grouped by priority (ascending: higher values are fallbacks); the strategy orders
each group: `priority` keeps the declared order, `weighted` draws a weighted random order,
`least-latency` prefers the lowest moving-average latency (targets without data first, so they
get measured), `lowest-cost` prefers the cheapest price per million tokens.
"""

from __future__ import annotations

import random
from itertools import groupby

from aigw_config.config import RouteConfig, TargetConfig

from .health import HealthRegistry


def _weighted_order(targets: list[TargetConfig], rng: random.Random) -> list[TargetConfig]:
    pool = [t for t in targets if t.weight > 0]
    out: list[TargetConfig] = []
    while pool:
        pick = rng.choices(range(len(pool)), weights=[t.weight for t in pool])[0]
        out.append(pool.pop(pick))
    return out + [t for t in targets if t.weight <= 0]


def _price(target: TargetConfig) -> float:
    p = target.pricing
    return (p.input_per_million + p.output_per_million) if p else float("inf")


def order_targets(route: RouteConfig, health: HealthRegistry, rng: random.Random = random._inst) -> list[TargetConfig]:
    if len(route.targets) == 1:
        return list(route.targets)
    ordered: list[TargetConfig] = []
    for _, group_iter in groupby(sorted(route.targets, key=lambda t: t.priority), key=lambda t: t.priority):
        group = list(group_iter)
        if len(group) > 1:
            if route.strategy == "weighted":
                group = _weighted_order(group, rng)
            elif route.strategy == "least-latency":
                group.sort(key=lambda t: health.of(route, t).latency_ewma or 0.0)
            elif route.strategy == "lowest-cost":
                group.sort(key=_price)
        ordered.extend(group)
    return ordered
