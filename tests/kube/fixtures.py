"""Pytest fixtures and small HTTP helpers for tests that need a Kubernetes API server.

Use in a test module (or a conftest.py)::

    from tests.kube.fixtures import kube_emulator, post_object  # noqa: F401

    def test_something(kube_emulator):
        post_object(kube_emulator.url, {"apiVersion": "v1", "kind": "ConfigMap", ...})
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.kube.emulator import KubeEmulator

JSON = dict[str, Any]


@pytest.fixture
def kube_emulator() -> Iterator[KubeEmulator]:
    """A started emulator, stopped (with all its watches closed) after the test."""
    emulator = KubeEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


def http_client(url: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=10.0, trust_env=False)


def object_path(url: str, api_version: str, kind: str, namespace: str | None = None,
                name: str | None = None, *, token: str | None = None) -> str:
    """The URL path of a collection or an object, found via discovery like kubectl does."""
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    with http_client(url, token) as client:
        response = client.get(prefix)
        response.raise_for_status()
        resources = response.json()["resources"]
    for resource in resources:
        if resource["kind"] == kind and "/" not in resource["name"]:
            break
    else:
        raise LookupError(f"{kind} is not served in {api_version}")
    path = prefix
    if resource["namespaced"]:
        path += f"/namespaces/{namespace or 'default'}"
    path += f"/{resource['name']}"
    return path + (f"/{name}" if name else "")


def post_object(url: str, obj: JSON, *, token: str | None = None) -> JSON:
    """Create ``obj`` (in its ``metadata.namespace`` or "default"); return the stored object."""
    path = object_path(url, obj["apiVersion"], obj["kind"],
                       (obj.get("metadata") or {}).get("namespace"), token=token)
    with http_client(url, token) as client:
        response = client.post(path, json=obj)
    if response.status_code >= 300:
        raise AssertionError(f"POST {path} -> {response.status_code}: {response.text}")
    result: JSON = response.json()
    return result


def load_yaml_documents(path: str | Path) -> list[JSON]:
    """All non-empty YAML documents of a file (e.g. CRD manifests to POST)."""
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]
