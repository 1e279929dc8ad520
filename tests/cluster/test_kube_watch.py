"""The gateway's own watch client (aigw_gateway.kube_watch) against the real API server.

The token of a pod's projected volume rotates: the kubelet writes a new one, and the old one
stops working when it expires. TokenRequest tokens live at least 10 minutes, so the test revokes
instead: each token is bound to its own Secret (`kubectl create token --bound-object-kind Secret`),
and deleting that Secret kills the token at once. The watch runs with a 2 s server-side timeout, so
it reconnects (and authenticates again) several times while the test runs.
"""

from __future__ import annotations

import asyncio
import base64
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from aigw_gateway.kube_watch import Connection, KubeError, KubeWatch, resource_path

from .support import Cluster

CM = "watched"
SA = "gw"


def _setup(cluster: Cluster, namespace: str) -> None:
    cluster.apply([
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SA}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": SA},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [CM],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": SA},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SA},
         "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": namespace}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CM}, "data": {"v": "1"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bind-1"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bind-2"}},
    ], namespace=namespace)


def _status_with(cluster: Cluster, namespace: str, token: str) -> int:
    url = cluster.server + resource_path("v1", "configmaps", namespace, CM)
    ca = base64.b64decode(cluster.ca_data).decode()
    import ssl

    with httpx.Client(verify=ssl.create_default_context(cadata=ca), trust_env=False) as client:
        return client.get(url, headers={"authorization": f"Bearer {token}"}).status_code


@pytest.mark.parametrize("max_age", [0.5, 3600.0], ids=["re-read-periodically", "re-read-on-401"])
async def test_watch_survives_a_token_rotation(cluster: Cluster, namespace: str, tmp_path: Path, max_age: float):
    await asyncio.to_thread(_setup, cluster, namespace)
    token1 = await asyncio.to_thread(cluster.token, SA, namespace, 600, "bind-1")
    token2 = await asyncio.to_thread(cluster.token, SA, namespace, 600, "bind-2")
    sa_dir = tmp_path / "serviceaccount"
    sa_dir.mkdir()
    (sa_dir / "token").write_text(token1)
    (sa_dir / "ca.crt").write_bytes(base64.b64decode(cluster.ca_data))
    (sa_dir / "namespace").write_text(namespace)
    server = urlparse(cluster.server)
    conn = Connection.in_cluster(sa_dir, host=server.hostname, port=str(server.port))
    assert conn.namespace == namespace
    conn.token.max_age = max_age  # type: ignore[union-attr]
    api = KubeWatch(conn)
    path, selector = resource_path("v1", "configmaps", namespace), f"metadata.name={CM}"
    seen: asyncio.Queue[str] = asyncio.Queue()
    errors: list[KubeError] = []

    async def follow() -> None:  # what KubeSource does, with short watches
        rv = ""
        while True:
            try:
                if not rv:
                    listing = await api.list(path, fieldSelector=selector)
                    rv = listing["metadata"]["resourceVersion"]
                    for item in listing["items"]:
                        seen.put_nowait(item["data"]["v"])
                async for kind, obj in api.watch(path, rv, timeout_seconds=2, fieldSelector=selector):
                    rv = obj["metadata"]["resourceVersion"]
                    if kind in ("ADDED", "MODIFIED"):
                        seen.put_nowait(obj["data"]["v"])
            except KubeError as exc:
                errors.append(exc)
                rv = ""
                await asyncio.sleep(0.2)

    async def next_value() -> str:
        return await asyncio.wait_for(seen.get(), timeout=30)

    task = asyncio.create_task(follow())
    try:
        assert await next_value() == "1"
        # the kubelet's rotation: a new token in the file, the old one dead
        (sa_dir / "token").write_text(token2)
        await asyncio.to_thread(cluster.kubectl, "delete", "secret", "bind-1", "-n", namespace)
        for _ in range(150):  # bounded: the API server notices the bound Secret is gone
            if await asyncio.to_thread(_status_with, cluster, namespace, token1) == 401:
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail("token 1 still authenticates after its Secret was deleted")
        await asyncio.sleep(2.5)  # at least one watch reconnect happens with token 1 dead
        await asyncio.to_thread(cluster.kubectl, "patch", "configmap", CM, "-n", namespace, "--type=merge",
                                "-p", '{"data": {"v": "2"}}')
        while (value := await next_value()) != "2":
            assert value == "1", value
        assert not errors, errors
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await api.close()


async def test_kubeconfig_with_a_client_certificate_leaves_no_files(cluster: Cluster, namespace: str):
    before = set(Path(tempfile.gettempdir()).glob("aigw-kube-*"))
    conn = Connection.from_kubeconfig(cluster.kubeconfig)
    assert conn.cert_pem and conn.key_pem, "the session's admin kubeconfig authenticates with a certificate"
    api = KubeWatch(conn)
    try:
        listing = await api.list(resource_path("v1", "configmaps", namespace))
        assert listing["kind"] == "ConfigMapList"
    finally:
        await api.close()
    assert set(Path(tempfile.gettempdir()).glob("aigw-kube-*")) == before
