"""A small synchronous client of the real API server for test code, and the operator's own
client for in-process reconciles (operator_kube: the one place that builds it)."""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import yaml

from aigw_config.registry import KINDS

ROOT = Path(__file__).resolve().parents[3]
G = "aigw.dev/v1alpha1"
SECRET_LABEL = {"aigw.dev/secret": "true"}
T = TypeVar("T")

_BUILTIN = {
    "Namespace": ("v1", "namespaces", False), "Secret": ("v1", "secrets", True),
    "ConfigMap": ("v1", "configmaps", True), "Service": ("v1", "services", True),
    "Event": ("v1", "events", True), "Deployment": ("apps/v1", "deployments", True),
    "ServiceAccount": ("v1", "serviceaccounts", True),
    "EndpointSlice": ("discovery.k8s.io/v1", "endpointslices", True),
    "CustomResourceDefinition": ("apiextensions.k8s.io/v1", "customresourcedefinitions", False),
}


def _path(kind: str, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
    if kind in KINDS:
        api_version, plural, namespaced = G, KINDS[kind].plural, True
    else:
        api_version, plural, namespaced = _BUILTIN[kind]
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = base + (f"/namespaces/{namespace}" if namespaced and namespace else "") + f"/{plural}"
    return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def cr(kind: str, name: str, spec: dict, namespace: str) -> dict:
    return {"apiVersion": G, "kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def secret(name: str, namespace: str, labelled: bool = True, **data: str) -> dict:
    meta = {"name": name, "namespace": namespace, **({"labels": dict(SECRET_LABEL)} if labelled else {})}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta,
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def wait_for(what: str, fn: Callable[[], T], timeout: float = 30.0, logs: Callable[[], str] | None = None) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    detail = f"\n--- logs ---\n{logs()[-6000:]}" if logs else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last={last!r}{detail}")


def _configuration(kubeconfig: Path):
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return configuration


def operator_kube(kubeconfig: Path):
    """The operator's `Kube` on the real API server, and what to close afterwards."""
    from aigw_operator.kube import Kube
    from aigw_operator.kubeclient import KubeClient

    api = KubeClient(_configuration(kubeconfig))
    return Kube(api), api


class Api:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        conf = _configuration(kubeconfig)
        tls = ssl.create_default_context(cafile=conf.ssl_ca_cert)
        if not conf.verify_ssl:
            tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
        if conf.cert_file:
            tls.load_cert_chain(conf.cert_file, conf.key_file)
        token = (conf.api_key or {}).get("authorization")
        headers = {"authorization": token if token.lower().startswith("bearer ") else f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=conf.host, verify=tls, headers=headers, timeout=30, trust_env=False)

    def close(self) -> None:
        self.http.close()

    def _check(self, r: httpx.Response) -> dict:
        if r.status_code >= 300:
            raise AssertionError(f"{r.request.method} {r.request.url.path} -> {r.status_code}: {r.text[:500]}")
        return r.json()

    def install_crds(self) -> None:
        names = []
        for path in sorted((ROOT / "crds").glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc:
                    names.append(doc["metadata"]["name"])
                    self._check(self.http.patch(
                        _path("CustomResourceDefinition", None, doc["metadata"]["name"]),
                        params={"fieldManager": "aigw-safety-tests", "force": "true"},
                        content=orjson.dumps(doc), headers={"content-type": "application/apply-patch+yaml"}))
        for name in names:
            wait_for(f"CRD {name} Established", lambda name=name: any(
                c["type"] == "Established" and c["status"] == "True"
                for c in (self.get("CustomResourceDefinition", name) or {}).get("status", {}).get("conditions", [])))
        # The aigw.dev group in discovery: what a watch or create needs.
        wait_for("aigw.dev in discovery", lambda: self.http.get(f"/apis/{G}").status_code == 200)
        for kind in KINDS:  # a fresh CRD's storage answers 429 "(re)initializing" for a moment
            wait_for(f"{kind} storage ready", lambda kind=kind: self.http.get(f"/apis/{G}/{KINDS[kind].plural}").status_code == 200)

    def create(self, obj: dict) -> dict:
        meta = obj["metadata"]
        return self._check(self.http.post(_path(obj["kind"], meta.get("namespace")), json=obj))

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        r = self.http.get(_path(kind, namespace, name))
        return None if r.status_code == 404 else self._check(r)

    def list(self, kind: str, namespace: str) -> list[dict]:
        return self._check(self.http.get(_path(kind, namespace))).get("items") or []

    def patch(self, kind: str, name: str, namespace: str, patch: dict) -> dict:
        return self._check(self.http.patch(_path(kind, namespace, name), content=orjson.dumps(patch),
                                           headers={"content-type": "application/merge-patch+json"}))

    def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        r = self.http.delete(_path(kind, namespace, name))
        if r.status_code != 404:
            self._check(r)

    def condition(self, kind: str, name: str, namespace: str, type_: str = "Accepted") -> dict:
        obj = self.get(kind, name, namespace) or {}
        return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == type_), {})

    def create_namespace(self, name: str) -> None:
        self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        # The ServiceAccount admission needs the namespace's default account for pods; nothing here
        # runs pods, so there is nothing to wait for.

    def delete_namespace(self, name: str) -> None:
        self.delete("Namespace", name)
