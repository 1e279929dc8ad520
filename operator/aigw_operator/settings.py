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
| AIGW_OPERATOR_ALLOWED_IMAGES          | the repository of AIGW_GATEWAY_IMAGE  | comma-separated image repositories (or prefixes |
|                                       |                                       | ending in "/") AIGateways may run; "*": any     |
| AIGW_OPERATOR_ALLOW_PRIVATE_BASE_URLS | false                                 | allow ProviderCredential baseURLs on link-local,|
|                                       |                                       | loopback and cloud-metadata addresses           |
| AIGW_OPERATOR_REQUIRE_SECRET_LABEL    | true                                  | read only Secrets labelled aigw.dev/secret=true |
| AIGW_OPERATOR_REPORT_MAX_BYTES        | 4194304                               | a pod report larger than this is not read       |

`aigw operator` flags set the same: --allowed-image REPO (repeatable), --allow-any-image,
--allow-private-base-urls, --read-unlabelled-secrets (aigw_operator/cli.py).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

from .policy import Policy, image_repository

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
    allowed_images: tuple[str, ...] = (image_repository(DEFAULT_GATEWAY_IMAGE),)  # empty: any image
    allow_private_base_urls: bool = False
    require_secret_label: bool = True
    report_max_bytes: int = 4 * 1024 * 1024

    @property
    def policy(self) -> Policy:
        return Policy(allowed_images=self.allowed_images, allow_private_base_urls=self.allow_private_base_urls,
                      require_secret_label=self.require_secret_label)

    @classmethod
    def from_env(cls) -> "OperatorConfig":
        env = os.environ.get
        priority = env("AIGW_OPERATOR_PRIORITY")
        gateway_image = env("AIGW_GATEWAY_IMAGE") or DEFAULT_GATEWAY_IMAGE
        images = [i.strip() for i in (env("AIGW_OPERATOR_ALLOWED_IMAGES") or "").split(",") if i.strip()]
        return cls(
            debounce_seconds=float(env("AIGW_OPERATOR_DEBOUNCE_SECONDS", "0.2")),
            watch_server_timeout=int(env("AIGW_OPERATOR_WATCH_TIMEOUT", "300")),
            gateway_image=gateway_image,
            report_interval=float(env("AIGW_OPERATOR_REPORT_INTERVAL", "10")),
            report_timeout=float(env("AIGW_OPERATOR_REPORT_TIMEOUT", "2")),
            report_grace=float(env("AIGW_OPERATOR_REPORT_GRACE", "15")),
            status_min_interval=float(env("AIGW_OPERATOR_STATUS_MIN_INTERVAL", "30")),
            error_percent=float(env("AIGW_OPERATOR_ERROR_PERCENT", "5")),
            peering_priority=int(priority) if priority else _random_priority(),
            peering_lifetime=int(env("AIGW_OPERATOR_PEERING_LIFETIME", "20")),
            allowed_images=() if images == ["*"] else tuple(images) or (image_repository(gateway_image),),
            allow_private_base_urls=_flag(env("AIGW_OPERATOR_ALLOW_PRIVATE_BASE_URLS"), False),
            require_secret_label=_flag(env("AIGW_OPERATOR_REQUIRE_SECRET_LABEL"), True),
            report_max_bytes=int(env("AIGW_OPERATOR_REPORT_MAX_BYTES", str(4 * 1024 * 1024))),
        )


def _flag(value: str | None, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")
