"""Fixtures of the real-API-server tier (see support.py for where the API server comes from).

    cluster     the session's Cluster (admin kubeconfig, kubectl); skips the tier with one line
                when there is no API server
    crds        the aigw CRDs applied server-side and Established (adoptable by the chart's
                release HELM_RELEASE in HELM_NAMESPACE, so `helm install` takes them over)
    namespace   a fresh namespace for one test, deleted afterwards
    new_namespace  a factory of fresh namespaces (several per test)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from .support import ROOT, Cluster, NoCluster, namespaces, start_cluster, wait_for

CRD_DIR = ROOT / "crds"
HELM_RELEASE = "aigw"
HELM_NAMESPACE = "aigw-system"

_no_cluster: str | None = None


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    global _no_cluster
    if _no_cluster:
        pytest.skip(_no_cluster)
    try:
        c = start_cluster()
    except NoCluster as exc:
        _no_cluster = str(exc)
        pytest.skip(_no_cluster)
    yield c
    if c.stop:
        c.stop()


def crd_documents() -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted(CRD_DIR.glob("*.yaml"))]


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> list[str]:
    """Names of the aigw CRDs, applied server-side and Established."""
    docs = crd_documents()
    for doc in docs:  # what `helm install` checks before it adopts an existing object
        meta = doc["metadata"]
        meta.setdefault("labels", {})["app.kubernetes.io/managed-by"] = "Helm"
        meta.setdefault("annotations", {}).update({"meta.helm.sh/release-name": HELM_RELEASE,
                                                   "meta.helm.sh/release-namespace": HELM_NAMESPACE})
    cluster.apply(docs)
    names = [d["metadata"]["name"] for d in docs]
    for name in names:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    # Discovery lags Established by a moment; kubectl needs it for short names.
    wait_for(lambda: "providercredentials" in cluster.kubectl("api-resources", "--api-group=aigw.dev", check=False).stdout,
             timeout=30, what="aigw.dev in discovery")
    return names


@pytest.fixture
def new_namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[Callable[[], str]]:
    prefix = request.node.name.split("[")[0].removeprefix("test_").replace("_", "-")[:20].strip("-")
    yield from namespaces(cluster, prefix or "t")


@pytest.fixture
def namespace(new_namespace: Callable[[], str]) -> str:
    return new_namespace()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
