"""An AIGateway reconciled against the API emulator: config, report token, workloads, no needless writes."""

from __future__ import annotations

import base64

import orjson
import pytest

from aigw_operator.reconciler import Reconciler
from tests.operator.support import LOCAL_POLICY, G, Cluster, cr, in_process_kube, secret

WORKLOADS = (("v1", "ServiceAccount", "gw-gateway"), ("rbac.authorization.k8s.io/v1", "Role", "gw-gateway"),
             ("rbac.authorization.k8s.io/v1", "RoleBinding", "gw-gateway"), ("apps/v1", "Deployment", "gw"),
             ("v1", "Service", "gw"))


@pytest.fixture
def cluster(kube_emulator):
    c = Cluster(kube_emulator.url)
    c.install_crds()
    return c


def credentials_of(cluster: Cluster) -> dict:
    sec = cluster.get("v1", "Secret", "gw-credentials")
    return orjson.loads(base64.b64decode(sec["data"]["credentials.json"]))


async def test_gateway_renders_config_rbac_deployment_and_service(cluster, fake_openai):
    cluster.apply(cr("ProviderCredential", "up", {"provider": "openai-compatible", "baseURL": fake_openai.base_url}))
    cluster.apply(cr("ModelRoute", "chat", {"model": "gpt", "targets": [{"credentialRef": "up"}]}))
    cluster.apply(secret("redis", url="redis://redis:6379/0"))
    gw = cluster.apply(cr("AIGateway", "gw", {"replicas": 2, "image": "example/gw:1",
                                              "redis": {"urlSecretRef": {"name": "redis", "key": "url"}},
                                              "service": {"port": 9090}}))
    kube, api = in_process_kube(cluster.url)
    reconciler = Reconciler(kube, gateway_image="example/default:0", policy=LOCAL_POLICY)
    try:
        await reconciler.reconcile("default")
        objs = {}
        for api_version, kind, name in WORKLOADS:
            obj = cluster.get(api_version, kind, name)
            assert obj is not None, f"{kind} {name} not created"
            (owner,) = obj["metadata"]["ownerReferences"]
            assert (owner["kind"], owner["uid"], owner["controller"]) == ("AIGateway", gw["metadata"]["uid"], True)
            objs[kind] = obj
        role_rules = objs["Role"]["rules"]
        assert {(r["resources"][0], r["resourceNames"][0]) for r in role_rules} == {
            ("configmaps", "gw-config"), ("secrets", "gw-credentials")}
        pod = objs["Deployment"]["spec"]["template"]["spec"]
        assert objs["Deployment"]["spec"]["replicas"] == 2 and pod["containers"][0]["image"] == "example/gw:1"
        assert {e["name"] for e in pod["containers"][0]["env"]} >= {"AIGW_REDIS_URL", "POD_NAME"}
        assert objs["Service"]["spec"]["ports"][0]["port"] == 9090

        # The pods' report token is generated once and is part of the credentials hash.
        token = credentials_of(cluster)["reportToken"]
        assert token and len(token) >= 32
        config = orjson.loads(cluster.get("v1", "ConfigMap", "gw-config")["data"]["config.json"])
        assert config["generation"] == 1

        # A render with nothing new writes nothing: same resourceVersions everywhere.
        before = {k: cluster.get(a, k, n)["metadata"]["resourceVersion"] for a, k, n in WORKLOADS}
        cm_rv = cluster.get("v1", "ConfigMap", "gw-config")["metadata"]["resourceVersion"]
        await reconciler.reconcile("default")
        assert {k: cluster.get(a, k, n)["metadata"]["resourceVersion"] for a, k, n in WORKLOADS} == before
        assert cluster.get("v1", "ConfigMap", "gw-config")["metadata"]["resourceVersion"] == cm_rv

        # A content change is a new generation with the same token; a spec change updates the Deployment.
        cluster.patch(G, "ModelRoute", "chat", {"spec": {"aliases": ["chat-default"]}})
        cluster.patch(G, "AIGateway", "gw", {"spec": {"replicas": 3, "image": None}})
        await reconciler.reconcile("default")
        assert orjson.loads(cluster.get("v1", "ConfigMap", "gw-config")["data"]["config.json"])["generation"] == 2
        assert credentials_of(cluster)["reportToken"] == token
        dep = cluster.get("apps/v1", "Deployment", "gw")
        assert dep["spec"]["replicas"] == 3 and dep["spec"]["template"]["spec"]["containers"][0]["image"] == "example/default:0"
        assert dep["metadata"]["resourceVersion"] != before["Deployment"]

        # A workload deleted by hand comes back; one that someone else owns is left alone.
        cluster.delete("v1", "Service", "gw")
        await reconciler.reconcile("default")
        assert cluster.get("v1", "Service", "gw") is not None

        # Deleting the gateway garbage-collects everything it owns.
        cluster.delete(G, "AIGateway", "gw")
        for api_version, kind, name in (*WORKLOADS, ("v1", "ConfigMap", "gw-config"), ("v1", "Secret", "gw-credentials")):
            assert cluster.get(api_version, kind, name) is None, f"{kind} {name} survived its owner"
    finally:
        await api.close()


async def test_objects_of_the_same_name_not_owned_by_the_gateway_are_left_alone(cluster):
    foreign = cluster.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gw", "namespace": "default"},
                             "spec": {"ports": [{"port": 80}]}})
    cluster.apply(cr("AIGateway", "gw", {}))
    kube, api = in_process_kube(cluster.url)
    try:
        settled = await Reconciler(kube, policy=LOCAL_POLICY).reconcile("default")
        svc = cluster.get("v1", "Service", "gw")
        assert svc["metadata"]["resourceVersion"] == foreign["metadata"]["resourceVersion"]
        # Nothing is written for a gateway that would collide: no half-made set of objects.
        assert cluster.get("apps/v1", "Deployment", "gw") is None and cluster.get("v1", "ConfigMap", "gw-config") is None
        accepted = cluster.condition("AIGateway", "gw", "Accepted")
        assert (accepted["status"], accepted["reason"]) == ("False", "Conflict") and "Service default/gw" in accepted["message"]
        assert not settled  # the render worker looks again later (with backoff)
    finally:
        await api.close()


async def test_a_config_too_large_even_compressed_is_refused_and_the_last_one_keeps_serving(cluster, monkeypatch):
    cluster.apply(cr("ProviderCredential", "up", {"provider": "openai-compatible", "baseURL": "http://127.0.0.1:9/v1"}))
    cluster.apply(cr("ModelRoute", "chat", {"model": "gpt", "targets": [{"credentialRef": "up"}]}))
    cluster.apply(cr("AIGateway", "gw", {}))
    kube, api = in_process_kube(cluster.url)
    try:
        reconciler = Reconciler(kube, policy=LOCAL_POLICY)
        await reconciler.reconcile("default")
        before = cluster.get("v1", "ConfigMap", "gw-config")
        # Shrink the object limit so that the next config cannot fit, even compressed.
        monkeypatch.setattr("aigw_config.packing.PACK_THRESHOLD", 100)
        monkeypatch.setattr("aigw_config.packing.OBJECT_DATA_LIMIT", 200)
        cluster.apply(cr("ModelRoute", "more", {"model": "gpt-2", "targets": [{"credentialRef": "up"}]}))
        await reconciler.reconcile("default")
        accepted = cluster.condition("AIGateway", "gw", "Accepted")
        assert (accepted["status"], accepted["reason"]) == ("False", "TooLarge")
        assert "the pods keep serving the last config" in accepted["message"]
        after = cluster.get("v1", "ConfigMap", "gw-config")
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # not truncated: untouched
        assert [e["reason"] for e in cluster.events("gw")] == ["TooLarge"]
    finally:
        await api.close()
