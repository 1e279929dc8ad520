"""The operator's safety rules on the real kube-apiserver of the cluster tier (its `cluster` fixture)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import Api


@pytest.fixture(scope="session")
def kubeconfig(cluster) -> Path:
    """The session's API server (tests/cluster/conftest.py: AIGW_TEST_KUBECONFIG, else ../shared/k8s/up)."""
    return cluster.kubeconfig


@pytest.fixture(scope="session")
def api(kubeconfig: Path) -> Iterator[Api]:
    client = Api(kubeconfig)
    client.install_crds()
    yield client
    client.close()


@pytest.fixture
def namespace(api: Api, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"safe-{request.node.name.removeprefix('test_')[:30].replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    api.create_namespace(name)
    yield name
    api.delete_namespace(name)
