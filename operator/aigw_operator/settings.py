"""Operator settings: one typed object, read once from the environment at start-up.

| variable                              | default                               | meaning                                         |
|---------------------------------------|---------------------------------------|-------------------------------------------------|
| AIGW_OPERATOR_DEBOUNCE_SECONDS        | 0.2                                   | wait for a burst of changes before a render     |
| AIGW_OPERATOR_WATCH_TIMEOUT           | 300                                   | server-side timeout of kopf's watches (s)       |
| AIGW_GATEWAY_IMAGE                    | ghcr.io/aigw-dev/aigw-gateway:0.1.0   | image of AIGateways that name none              |
| AIGW_OPERATOR_REPORT_INTERVAL         | 10                                    | seconds between two status rounds              |
| AIGW_OPERATOR_REPORT_TIMEOUT          | 2                                     | timeout of one pod report request (s)           |
| AIGW_OPERATOR_REPORT_GRACE            | 15                                    | a silent pod keeps its last report this long (s)|
| AIGW_OPERATOR_STATUS_MIN_INTERVAL     | 30                                    | rate-only status changes: one write per object  |
|                                       |                                       | per this many seconds                           |
| AIGW_OPERATOR_ERROR_PERCENT           | 5                                     | Degraded/HighErrorRate at this error ratio      |
| AIGW_OPERATOR_PRIORITY                | random, negative                      | kopf peering priority (HA: the highest is active;|
|                                       |                                       | `kopf run --dev` (666) and `kopf freeze` win)   |
| AIGW_OPERATOR_PEERING_LIFETIME        | 20                                    | seconds after which a silent peer counts as dead|
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

DEFAULT_GATEWAY_IMAGE = "ghcr.io/aigw-dev/aigw-gateway:0.1.0"


def _random_priority() -> int:
    # Distinct priorities: kopf pauses *every* operator when peers share one. Negative, so that
    # a developer's `kopf run --dev` (priority 666) still pauses the deployed replicas.
    return -random.SystemRandom().randint(1, 2**31 - 1)


@dataclass(frozen=True)
class OperatorConfig:
    debounce_seconds: float = 0.2
    watch_server_timeout: int = 300
    gateway_image: str = DEFAULT_GATEWAY_IMAGE
    report_interval: float = 10.0
    report_timeout: float = 2.0
    report_grace: float = 15.0
    status_min_interval: float = 30.0
    error_percent: float = 5.0
    peering_priority: int = field(default_factory=_random_priority)
    peering_lifetime: int = 20

    @classmethod
    def from_env(cls) -> "OperatorConfig":
        env = os.environ.get
        priority = env("AIGW_OPERATOR_PRIORITY")
        return cls(
            debounce_seconds=float(env("AIGW_OPERATOR_DEBOUNCE_SECONDS", "0.2")),
            watch_server_timeout=int(env("AIGW_OPERATOR_WATCH_TIMEOUT", "300")),
            gateway_image=env("AIGW_GATEWAY_IMAGE") or DEFAULT_GATEWAY_IMAGE,
            report_interval=float(env("AIGW_OPERATOR_REPORT_INTERVAL", "10")),
            report_timeout=float(env("AIGW_OPERATOR_REPORT_TIMEOUT", "2")),
            report_grace=float(env("AIGW_OPERATOR_REPORT_GRACE", "15")),
            status_min_interval=float(env("AIGW_OPERATOR_STATUS_MIN_INTERVAL", "30")),
            error_percent=float(env("AIGW_OPERATOR_ERROR_PERCENT", "5")),
            peering_priority=int(priority) if priority else _random_priority(),
            peering_lifetime=int(env("AIGW_OPERATOR_PEERING_LIFETIME", "20")),
        )
