"""Live status end to end: an AIGateway and its objects applied -> a real `kopf run` operator renders
the config and the workloads; two real gateway processes (standing in for the Deployment's pods,
found through EndpointSlices as a Service would find them) serve the openai SDK and report; the
operator writes ModelRoute, TenantQuota, ProviderCredential and AIGateway status that matches the
traffic, "2/2" on the current generation, then "1/2" with a config-stale pod, then drops a stopped
pod. Also measured: a ModelRoute change -> every pod serving it -> the status saying so.
"""

from __future__ import annotations

import base64
import time

import openai
import orjson
import pytest

from tests.operator.support import G, Cluster, OperatorProcess, cr, endpoint_slice, secret, wait_for

TENANT_KEY = "sk-tenant-live"
PRICE_IN, PRICE_OUT = 1000.0, 2000.0  # USD per million tokens: visible spend from a few requests
OPERATOR_ENV = {
    "AIGW_OPERATOR_REPORT_INTERVAL": "0.5",
    "AIGW_OPERATOR_REPORT_TIMEOUT": "3",
    "AIGW_OPERATOR_REPORT_GRACE": "2",
    "AIGW_OPERATOR_STATUS_MIN_INTERVAL": "0",
}


@pytest.fixture
def setup(kube_emulator, tmp_path, fake_openai):
    cluster = Cluster(kube_emulator.url)
    cluster.install_crds()
    kubeconfig = kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", env=OPERATOR_ENV)
    yield cluster, operator, kubeconfig
    operator.stop()


def apply_objects(cluster: Cluster, base_url: str) -> None:
    cluster.apply(secret("up-key", apiKey="sk-upstream-test"))
    cluster.apply(cr("ProviderCredential", "up", {"provider": "openai-compatible", "baseURL": base_url,
                                                  "apiKeySecretRef": {"name": "up-key"}}))
    pricing = {"inputPerMillion": PRICE_IN, "outputPerMillion": PRICE_OUT}
    cluster.apply(cr("ModelRoute", "chat", {"model": "gpt-live", "targets": [
        {"credentialRef": "up", "model": "fake", "pricing": pricing}]}))
    cluster.apply(cr("ModelRoute", "broken", {
        "model": "gpt-broken", "targets": [{"credentialRef": "up", "model": "fake~status=500"}],
        "retry": {"attempts": 0}, "circuitBreaker": {"consecutiveFailures": 2, "openSeconds": 300}}))
    cluster.apply(secret("team-key", apiKey=TENANT_KEY))
    cluster.apply(cr("TenantQuota", "team", {"apiKeySecretRefs": [{"name": "team-key"}],
                                              "limits": {"requestsPerMinute": 1000},
                                              "budget": {"amount": 100, "period": "monthly"}}))
    cluster.apply(cr("AIGateway", "gw", {"replicas": 2}))


def snapshot_config(cluster: Cluster, folder) -> int:
    """What a pod that missed the next change would still serve: the current pair, as files."""
    folder.mkdir()
    cm = cluster.get("v1", "ConfigMap", "gw-config")
    sec = cluster.get("v1", "Secret", "gw-credentials")
    (folder / "config.json").write_text(cm["data"]["config.json"])
    (folder / "credentials.json").write_bytes(base64.b64decode(sec["data"]["credentials.json"]))
    return orjson.loads(cm["data"]["config.json"])["generation"]


def test_status_tells_what_the_pods_serve(setup, kube_emulator, fake_openai, start_gateway, tmp_path):
    cluster, operator, kubeconfig = setup
    logs = operator.log
    apply_objects(cluster, fake_openai.base_url)

    # The operator runs the pods: RBAC, Deployment and Service, all owned by the AIGateway.
    gw_uid = cluster.get(G, "AIGateway", "gw")["metadata"]["uid"]
    for api_version, kind, name in (("v1", "ServiceAccount", "gw-gateway"), ("rbac.authorization.k8s.io/v1", "Role", "gw-gateway"),
                                    ("rbac.authorization.k8s.io/v1", "RoleBinding", "gw-gateway"),
                                    ("apps/v1", "Deployment", "gw"), ("v1", "Service", "gw")):
        obj = wait_for(f"{kind} {name}", lambda: cluster.get(api_version, kind, name), 30, logs=logs)
        assert obj["metadata"]["ownerReferences"][0]["uid"] == gw_uid
    generation = wait_for("config rendered", lambda: (cluster.status("AIGateway", "gw").get("configGeneration")), 30,
                          logs=logs)

    # Two pods: real gateway processes loading the pair through the API, found via EndpointSlices.
    kube_args = ("--kube-configmap", "gw-config", "--kube-secret", "gw-credentials", "--namespace", "default")
    pod_a = start_gateway(*kube_args, env={"KUBECONFIG": str(kubeconfig), "POD_NAME": "gw-a"}, wait=False)
    pod_b = start_gateway(*kube_args, env={"KUBECONFIG": str(kubeconfig), "POD_NAME": "gw-b"}, wait=False)
    pod_a.wait_ready(timeout=30)
    pod_b.wait_ready(timeout=30)
    cluster.apply(endpoint_slice("gw", {"gw-a": pod_a.port}, ops_port=pod_a.ops_port))
    cluster.apply(endpoint_slice("gw", {"gw-b": pod_b.port}, ops_port=pod_b.ops_port))
    gw_status = wait_for("AIGateway 2/2", lambda: (s := cluster.status("AIGateway", "gw")).get("served") == "2/2"
                         and cluster.condition("AIGateway", "gw", "Ready").get("status") == "True" and s, 30, logs=logs)
    assert gw_status["readyReplicas"] == 2 and gw_status["reportingPods"] == 2
    assert gw_status["pods"] == [{"name": "gw-a", "generation": generation}, {"name": "gw-b", "generation": generation}]
    assert gw_status["endpoint"] == "http://gw.default.svc:8080"

    # Traffic: 3 requests through pod a, 2 through pod b; 2 failing ones through pod b.
    spend = 0.0
    for pod, count in ((pod_a, 3), (pod_b, 2)):
        client = openai.OpenAI(base_url=pod.url + "/v1", api_key=TENANT_KEY, max_retries=0, timeout=10)
        for i in range(count):
            reply = client.chat.completions.create(model="gpt-live", messages=[{"role": "user", "content": f"hello {i}"}])
            spend += (reply.usage.prompt_tokens * PRICE_IN + reply.usage.completion_tokens * PRICE_OUT) / 1e6
    broken = openai.OpenAI(base_url=pod_b.url + "/v1", api_key=TENANT_KEY, max_retries=0, timeout=10)
    for _ in range(2):
        with pytest.raises(openai.APIStatusError):
            broken.chat.completions.create(model="gpt-broken", messages=[{"role": "user", "content": "x"}])

    chat = wait_for("ModelRoute chat counts 5 requests", lambda: (s := cluster.status("ModelRoute", "chat"))
                    .get("requestsPerMinute") == 5.0 and s, 30, logs=logs)
    assert chat["served"] == "2/2" and chat["errorPercent"] == 0.0 and chat["gateway"] == "gw"
    assert chat["latencyP95Ms"] > 0
    (target,) = chat["targets"]
    assert (target["credential"], target["model"], target["health"], target["circuit"]) == ("up", "fake", "Healthy", "closed")
    assert cluster.condition("ModelRoute", "chat", "Ready")["reason"] == "Serving"
    assert cluster.condition("ModelRoute", "chat", "Degraded")["status"] == "False"

    bad = wait_for("ModelRoute broken: circuit open", lambda: (s := cluster.status("ModelRoute", "broken"))
                   .get("targets") and s["targets"][0]["circuit"] == "open" and s, 30, logs=logs)
    assert bad["errorPercent"] == 100.0 and bad["requestsPerMinute"] == 2.0 and bad["targets"][0]["openPods"] == 1
    assert cluster.condition("ModelRoute", "broken", "Degraded")["reason"] == "CircuitOpen"
    wait_for("CircuitOpened event", lambda: [e for e in cluster.events("broken") if e["reason"] == "CircuitOpened"], 30, logs=logs)
    credential = cluster.status("ProviderCredential", "up")
    assert credential["health"] == "Degraded" and credential["routes"] == 2 and credential["openCircuits"] == 1

    tenant = wait_for("TenantQuota spend", lambda: (s := cluster.status("TenantQuota", "team"))
                      .get("spendThisPeriod") is not None and s, 30, logs=logs)
    assert tenant["spendThisPeriod"] == pytest.approx(spend, abs=1e-5)
    assert tenant["budgetRemaining"] == pytest.approx(100 - spend, abs=1e-5)
    assert tenant["throttledRequests"] == 0 and tenant["served"] == "2/2"
    assert cluster.condition("TenantQuota", "team", "Degraded")["reason"] == "Healthy"

    # A ModelRoute change: how long until every pod serves it, and until the status says so?
    stale_dir = tmp_path / "stale-config"
    stale_generation = snapshot_config(cluster, stale_dir)
    changed = time.monotonic()
    cluster.patch(G, "ModelRoute", "chat", {"spec": {"aliases": ["chat-default"]}})
    new_generation = stale_generation + 1
    for pod in (pod_a, pod_b):
        pod.wait_ready(generation=new_generation, timeout=20)
    pods_serving = time.monotonic() - changed
    wait_for("status shows the new generation on every pod",
             lambda: cluster.status("AIGateway", "gw").get("pods") == [
                 {"name": "gw-a", "generation": new_generation}, {"name": "gw-b", "generation": new_generation}]
             and cluster.status("ModelRoute", "chat").get("served") == "2/2"
             and cluster.status("AIGateway", "gw").get("configGeneration") == new_generation, 20, 0.05, logs=logs)
    status_shows = time.monotonic() - changed
    print(f"\nModelRoute change -> every gateway process serves it: {pods_serving:.2f}s; "
          f"-> status shows 2/2 on generation {new_generation}: {status_shows:.2f}s")

    # A config-stale pod (it still serves the previous generation) replaces pod b: "1/2".
    pod_c = start_gateway("--config-dir", str(stale_dir), env={"POD_NAME": "gw-c"}, wait=False)
    assert pod_c.wait_ready(timeout=30)["generation"] == stale_generation
    cluster.delete("discovery.k8s.io/v1", "EndpointSlice", f"gw-{pod_b.port}")
    cluster.apply(endpoint_slice("gw", {"gw-c": pod_c.port}, ops_port=pod_c.ops_port))
    wait_for("ModelRoute chat 1/2", lambda: cluster.status("ModelRoute", "chat").get("served") == "1/2", 30, logs=logs)
    ready = cluster.condition("ModelRoute", "chat", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RolloutInProgress")
    gw_status = cluster.status("AIGateway", "gw")
    assert gw_status["served"] == "1/2"
    assert {p["name"]: p.get("generation") for p in gw_status["pods"]} == {"gw-a": new_generation, "gw-c": stale_generation}

    # The stale pod stops; its endpoint lingers (no kubelet here) but it drops out of the count.
    pod_c.stop()
    wait_for("stopped pod dropped", lambda: cluster.status("AIGateway", "gw").get("reportingPods") == 1, 30, logs=logs)
    gw_status = cluster.status("AIGateway", "gw")
    assert gw_status["served"] == "1/1" and gw_status["readyReplicas"] == 2
    degraded = cluster.condition("AIGateway", "gw", "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "PodsNotReporting") and "gw-c" in degraded["message"]
    wait_for("ModelRoute chat 1/1 and Ready", lambda: cluster.status("ModelRoute", "chat").get("served") == "1/1"
             and cluster.condition("ModelRoute", "chat", "Ready").get("status") == "True", 30, logs=logs)

    # Rounds keep running; a status that does not change is not written again: once the last
    # changes landed (a round may still be writing one when the wait above returns), a window of
    # four rounds passes without any write to these objects (resourceVersions unchanged).
    objects = (("AIGateway", "gw"), ("ModelRoute", "chat"), ("ModelRoute", "broken"), ("TenantQuota", "team"),
               ("ProviderCredential", "up"))

    def versions() -> dict[tuple[str, str], str]:
        return {(kind, name): cluster.get(G, kind, name)["metadata"]["resourceVersion"] for kind, name in objects}

    def quiet_for_four_rounds() -> bool:
        before = versions()
        time.sleep(2.0)  # four rounds of 0.5 s
        return versions() == before
    wait_for("four status rounds without a write", quiet_for_four_rounds, 30, 0.0, logs=logs)
    assert "Traceback" not in operator.log(), operator.log()[-4000:]
