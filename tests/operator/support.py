"""Helpers for operator tests against the Kubernetes API emulator (tests/kube).

- `Cluster`: a small synchronous client (apply/get/patch/delete/list) for test code.
- `OperatorProcess`: a real `aigw operator` (kopf run) subprocess with its own log.
- `endpoint_slice`: what the endpoint-slice controller would write for a pod (there is no
  kubelet or controller in the emulator; tests point slices at real gateway processes on
  127.0.0.1).
- `in_process_kube`: the operator's own `Kube` on the emulator, for in-process reconciles.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson

from aigw_operator.policy import Policy
from tests.kube.fixtures import load_yaml_documents, object_path, post_object

ROOT = Path(__file__).resolve().parents[2]
G = "aigw.dev/v1alpha1"
T = TypeVar("T")


def cr(kind: str, name: str, spec: dict, namespace: str = "default", labels: dict | None = None) -> dict:
    meta = {"name": name, "namespace": namespace, **({"labels": labels} if labels else {})}
    return {"apiVersion": G, "kind": kind, "metadata": meta, "spec": spec}


SECRET_LABEL = {"aigw.dev/secret": "true"}  # the operator reads only Secrets that carry it
# In-process reconciles whose ProviderCredentials point at fakes on 127.0.0.1.
LOCAL_POLICY = Policy(allow_private_base_urls=True)


def secret(name: str, namespace: str = "default", labelled: bool = True, **data: str) -> dict:
    meta = {"name": name, "namespace": namespace, **({"labels": dict(SECRET_LABEL)} if labelled else {})}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta,
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def endpoint_slice(service: str, pods: dict[str, int], namespace: str = "default", name: str | None = None,
                   ready: bool = True, ops_port: int | None = None) -> dict:
    """One slice per port (slices carry one port list): pods maps pod name -> port on 127.0.0.1;
    `ops_port` is the pods' ops port (/internal/report), named `ops` as the operator's Service does."""
    (port,) = set(pods.values())
    ports = [{"name": "http", "port": port, "protocol": "TCP"}]
    if ops_port is not None:
        ports.append({"name": "ops", "port": ops_port, "protocol": "TCP"})
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name or f"{service}-{port}", "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": service,
                                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready, "serving": ready, "terminating": False},
                       "targetRef": {"kind": "Pod", "name": pod, "namespace": namespace}} for pod in pods],
    }


class Cluster:
    def __init__(self, url: str, namespace: str = "default") -> None:
        self.url = url
        self.namespace = namespace
        self.http = httpx.Client(base_url=url, timeout=15, trust_env=False)
        self._paths: dict[tuple[str, str], str] = {}

    def path(self, api_version: str, kind: str, name: str | None = None, namespace: str | None = None) -> str:
        key = (api_version, kind)
        if key not in self._paths:
            self._paths[key] = object_path(self.url, api_version, kind, "NAMESPACE")
        path = self._paths[key].replace("/namespaces/NAMESPACE/", f"/namespaces/{namespace or self.namespace}/")
        return path + (f"/{name}" if name else "")

    def install_crds(self) -> None:
        for path in sorted((ROOT / "crds").glob("*.yaml")):
            for doc in load_yaml_documents(path):
                post_object(self.url, doc)

    def apply(self, obj: dict) -> dict:
        meta = obj["metadata"]
        r = self.http.post(self.path(obj["apiVersion"], obj["kind"], namespace=meta.get("namespace")),
                           content=orjson.dumps(obj), headers={"content-type": "application/json"})
        assert r.status_code == 201, r.text
        return r.json()

    def create_cluster_object(self, obj: dict) -> dict:
        return post_object(self.url, obj)

    def get(self, api_version: str, kind: str, name: str) -> dict | None:
        r = self.http.get(self.path(api_version, kind, name))
        return None if r.status_code == 404 else r.raise_for_status().json()

    def list(self, api_version: str, kind: str, **params: str) -> list[dict]:
        return self.http.get(self.path(api_version, kind), params=params).raise_for_status().json()["items"]

    def patch(self, api_version: str, kind: str, name: str, patch: dict) -> dict:
        r = self.http.patch(self.path(api_version, kind, name), content=orjson.dumps(patch),
                            headers={"content-type": "application/merge-patch+json"})
        assert r.status_code == 200, r.text
        return r.json()

    def replace(self, obj: dict) -> dict:
        r = self.http.put(self.path(obj["apiVersion"], obj["kind"], obj["metadata"]["name"]), content=orjson.dumps(obj),
                          headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        return r.json()

    def delete(self, api_version: str, kind: str, name: str) -> None:
        r = self.http.delete(self.path(api_version, kind, name))
        assert r.status_code in (200, 202), r.text

    def status(self, kind: str, name: str) -> dict:
        return (self.get(G, kind, name) or {}).get("status") or {}

    def condition(self, kind: str, name: str, type_: str) -> dict:
        return next((c for c in self.status(kind, name).get("conditions") or [] if c.get("type") == type_), {})

    def events(self, name: str | None = None) -> list[dict]:
        items = self.list("v1", "Event")
        return [e for e in items if name is None or e["involvedObject"]["name"] == name]


class OperatorProcess:
    """`aigw operator` against the emulator; `args` default to a standalone, one-namespace run."""

    def __init__(self, kubeconfig: Path, log_path: Path, args: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")
        full_env = {**os.environ, "KUBECONFIG": str(kubeconfig), "AIGW_OPERATOR_DEBOUNCE_SECONDS": "0.05",
                    "AIGW_OPERATOR_ALLOW_PRIVATE_BASE_URLS": "true",  # the fakes listen on 127.0.0.1
                    "PYTHONPATH": f"{ROOT / 'gateway'}{os.pathsep}{ROOT / 'operator'}", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aigw_gateway.cli", "operator",
             *(args or ["--standalone", "--namespace", "default"]), "--verbose"],
            stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=str(ROOT),
        )

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Die without a word (SIGKILL): no goodbye to the peers, as when a node is lost."""
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


def wait_for(what: str, fn: Callable[[], T], timeout: float = 20.0, interval: float = 0.1,
             logs: Callable[[], str] | None = None) -> T:
    """Poll `fn` until it returns something truthy (bounded); fail with the last value and logs."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    detail = f"\n--- logs ---\n{logs()[-6000:]}" if logs else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last={last!r}{detail}")


def in_process_kube(url: str):
    """The operator's `Kube` (and its KubeClient, to close) on the emulator."""
    from kubernetes.client import Configuration

    from aigw_operator.kube import Kube
    from aigw_operator.kubeclient import KubeClient

    configuration = Configuration()
    configuration.host = url
    api = KubeClient(configuration)
    return Kube(api), api
