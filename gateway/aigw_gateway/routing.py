"""Which targets a request tries, in order.

The foundation serves strategy `priority` (ascending priority, declared order among equals);
other strategies order the same way until their selectors land.
"""

from __future__ import annotations

from aigw_config.config import RouteConfig, TargetConfig


def plan(route: RouteConfig) -> list[TargetConfig]:
    return sorted(route.targets, key=lambda t: t.priority)
