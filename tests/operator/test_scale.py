"""1,000 ModelRoutes render within 10 s; their config (over a ConfigMap's 1 MiB) is packed and a
real gateway loads it back through the API (KubeSource) and serves the last route."""

from __future__ import annotations

import time

import httpx
import pytest

from aigw_config.packing import OBJECT_DATA_LIMIT
from aigw_operator.reconciler import Reconciler
from tests.gateway.harness import TENANT_KEY
from tests.operator.support import LOCAL_POLICY, Cluster, cr, in_process_kube, secret

ROUTES = 1000


def route(i: int, base_url_credential: str = "up") -> dict:
    # Five aliases and four targets each: a thousand of them render to about 1.2 MB of JSON.
    return cr("ModelRoute", f"route-{i:04d}", {
        "model": f"model-{i:04d}",
        "aliases": [f"model-{i:04d}-alias-{j}" for j in range(5)],
        "targets": [{"credentialRef": base_url_credential, "model": f"upstream-{i:04d}-{k}", "priority": k}
                    for k in range(4)],
    })


@pytest.fixture
def cluster(kube_emulator):
    c = Cluster(kube_emulator.url)
    c.install_crds()
    return c


async def test_a_thousand_routes_render_in_time_and_load_back_in_a_gateway(cluster, kube_emulator, fake_openai,
                                                                        start_gateway, tmp_path):
    cluster.apply(cr("ProviderCredential", "up", {"provider": "openai-compatible", "baseURL": fake_openai.base_url,
                                                  "apiKeySecretRef": {"name": "up-key"}}))
    cluster.apply(secret("up-key", apiKey="sk-upstream-test"))
    cluster.apply(cr("TenantQuota", "team", {"apiKeySecretRefs": [{"name": "team-key"}]}))
    cluster.apply(secret("team-key", apiKey=TENANT_KEY))
    for i in range(ROUTES):
        cluster.apply(route(i))
    cluster.apply(cr("AIGateway", "gw", {"replicas": 2}))

    kube, api = in_process_kube(cluster.url)
    try:
        started = time.perf_counter()
        await Reconciler(kube, policy=LOCAL_POLICY).reconcile("default")
        elapsed = time.perf_counter() - started
    finally:
        await api.close()
    print(f"\nrender of {ROUTES} ModelRoutes (list, render, pack, write ConfigMap/Secret/workloads, "
          f"{ROUTES} Accepted conditions): {elapsed:.2f}s")
    assert elapsed < 10.0, f"rendering {ROUTES} routes took {elapsed:.1f}s"

    configmap = cluster.get("v1", "ConfigMap", "gw-config")
    assert "config.json" not in (configmap.get("data") or {})  # over the limit as text...
    packed = configmap["binaryData"]["config.json.gz"]
    assert len(packed) < OBJECT_DATA_LIMIT  # ...and well within it compressed
    statuses = [cluster.condition("ModelRoute", f"route-{i:04d}", "Accepted").get("status") for i in (0, 500, 999)]
    assert statuses == ["True", "True", "True"]

    # A real gateway process watches the pair through the API and serves every route.
    kubeconfig = kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    pod = start_gateway("--kube-configmap", "gw-config", "--kube-secret", "gw-credentials", "--namespace", "default",
                        env={"KUBECONFIG": str(kubeconfig)}, wait=False)
    ready = pod.wait_ready(timeout=30)
    assert ready["routes"] == ROUTES and ready["generation"] == 1
    r = httpx.post(pod.url + "/v1/chat/completions", headers={"authorization": f"Bearer {TENANT_KEY}"},
                   json={"model": "model-0999-alias-4", "messages": [{"role": "user", "content": "last"}]}, timeout=10)
    assert r.status_code == 200, r.text
    assert fake_openai.last_request.json["model"] == "upstream-0999-0"
