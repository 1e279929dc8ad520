"""Fixtures of the chart tests: the helm binary, and each values set rendered once per session.

Without helm these tests fail (run scripts/get-helm); AIGW_SKIP_HELM=1 skips them on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from .support import AIGW_API, HelmMissing, Rendered, find_helm, template

VALUES_DIR = Path(__file__).parent / "values"
GATEWAY_API = ("--api-versions", f"{AIGW_API}/AIGateway")
# The peering kinds as a cluster serves them once kopf's peering CRDs are installed.
PEERING_API = ("--api-versions", "kopf.dev/v1/ClusterKopfPeering", "--api-versions", "kopf.dev/v1/KopfPeering")

# name -> helm template arguments. Each is rendered once and checked by every chart test.
VALUE_SETS: dict[str, tuple[str, ...]] = {
    "defaults": (),
    "crds-disabled": ("--set", "crds.enabled=false", "--set", "crds.keep=false"),
    "external-redis": ("--set", "redis.mode=external", "--set", "redis.external.existingSecret=prod-redis",
                       "--set", "redis.external.existingSecretKey=uri", "--set", "gateway.create=true", *GATEWAY_API),
    "external-redis-url": ("--set", "redis.mode=external", "--set", "redis.external.url=rediss://:pw@redis.example:6380/0",
                           "--set", "gateway.create=true", *GATEWAY_API),
    "internal-redis": ("--set", "redis.mode=internal", "--set", "gateway.create=true", *GATEWAY_API),
    "monitoring": ("--set", "monitoring.serviceMonitor.enabled=true", "--set", "monitoring.prometheusRule.enabled=true",
                   "--set", "monitoring.grafanaDashboard.enabled=true"),
    "gateway": ("--set", "gateway.create=true", "--set", "networkPolicy.enabled=true", *GATEWAY_API),
    "namespaced": ("--set", "operator.watchNamespaces={team-a,team-b}"),
    "ha": ("--set", "operator.replicas=3", "--set", "operator.peering.enabled=true", *PEERING_API),
    "everything": ("-f", str(VALUES_DIR / "everything.yaml"), *GATEWAY_API, *PEERING_API),
}


@pytest.fixture(scope="session")
def helm_bin() -> str:
    if os.environ.get("AIGW_SKIP_HELM") == "1":
        pytest.skip("AIGW_SKIP_HELM=1: chart tests that need helm skipped on request")
    try:
        return find_helm()
    except HelmMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def render(helm_bin: str) -> Callable[[str], Rendered]:
    """render(values set name) -> Rendered, cached: one helm run per values set per session."""
    cache: dict[str, Rendered] = {}

    def _render(name: str) -> Rendered:
        if name not in cache:
            cache[name] = template(helm_bin, *VALUE_SETS[name])
        return cache[name]

    return _render
