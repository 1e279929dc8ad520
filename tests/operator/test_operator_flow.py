"""kubectl apply -> a real `kopf run` operator -> ConfigMap/Secret -> a gateway pod -> the openai SDK.

The operator and the gateway are real subprocesses talking HTTP to the in-process Kubernetes API
emulator (tests/kube), which keeps the API server's semantics: server-set uid, resourceVersion and
generation, the status subresource, watches and owner-reference garbage collection.
"""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from tests.operator.support import Cluster, OperatorProcess, cr, secret
from tests.operator.support import wait_for as support_wait_for

NS = "default"
TENANT_KEY = "sk-tenant-flow"
G = "aigw.dev/v1alpha1"


def wait_for(what: str, fn, operator: OperatorProcess, timeout: float = 20.0):
    return support_wait_for(what, fn, timeout=timeout, logs=operator.log)


def accepted(obj: dict | None) -> dict | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == "Accepted":
            return cond
    return None


@pytest.fixture
def cluster(kube_emulator, tmp_path):
    kube = Cluster(kube_emulator.url, NS)
    kube.install_crds()
    kubeconfig = kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log")
    yield kube, operator, kubeconfig
    operator.stop()


def test_apply_to_request_and_back(cluster, fake_openai, start_gateway):
    kube, operator, kubeconfig = cluster
    kube.apply(cr("ProviderCredential", "upstream", {
        "provider": "openai-compatible", "baseURL": fake_openai.base_url,
        "apiKeySecretRef": {"name": "upstream-key", "key": "apiKey"}}))
    kube.apply(cr("ModelRoute", "chat", {"model": "gpt-flow", "targets": [{"credentialRef": "upstream", "model": "fake"}]}))
    kube.apply(cr("TenantQuota", "team", {"apiKeySecretRefs": [{"name": "team-key"}]}))
    kube.apply(secret("team-key", apiKey=TENANT_KEY))
    gw = kube.apply(cr("AIGateway", "gw", {"replicas": 1}))

    # The provider key is missing: a temporary condition, and the route cannot resolve its target.
    cond = wait_for("SecretNotFound on the credential",
                    lambda: (c := accepted(kube.get(G, "ProviderCredential", "upstream"))) and c["reason"] == "SecretNotFound" and c,
                    operator)
    assert cond["status"] == "False" and "upstream-key" in cond["message"]
    wait_for("RefNotFound on the route",
             lambda: (accepted(kube.get(G, "ModelRoute", "chat")) or {}).get("reason") == "RefNotFound", operator)

    # ...and it resolves by itself when the Secret appears.
    kube.apply(secret("upstream-key", apiKey="sk-upstream-test"))
    for kind, name in (("ProviderCredential", "upstream"), ("ModelRoute", "chat"), ("TenantQuota", "team")):
        obj = wait_for(f"{kind} accepted",
                       lambda: (o := kube.get(G, kind, name)) and (accepted(o) or {}).get("status") == "True" and o,
                       operator)
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]

    configmap = wait_for("rendered ConfigMap", lambda: kube.get("v1", "ConfigMap", "gw-config"), operator)
    rendered_secret = kube.get("v1", "Secret", "gw-credentials")
    for obj in (configmap, rendered_secret):
        (owner,) = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("AIGateway", "gw", gw["metadata"]["uid"])
    config = orjson.loads(configmap["data"]["config.json"])
    assert config["schemaVersion"] == 1 and [r["model"] for r in config["routes"]] == ["gpt-flow"]
    assert "sk-upstream-test" not in configmap["data"]["config.json"] and TENANT_KEY not in str(rendered_secret)
    gw_status = wait_for("AIGateway status", lambda: (kube.get(G, "AIGateway", "gw") or {}).get("status", {}).get("configGeneration"), operator)
    assert gw_status >= 1

    # A gateway pod loads the pair through the API and serves the openai SDK.
    pod = start_gateway("--kube-configmap", "gw-config", "--kube-secret", "gw-credentials", "--namespace", NS,
                        env={"KUBECONFIG": str(kubeconfig)})
    client = openai.OpenAI(base_url=pod.url + "/v1", api_key=TENANT_KEY, max_retries=0, timeout=10)
    reply = client.chat.completions.create(model="gpt-flow", messages=[{"role": "user", "content": "through kube"}])
    assert reply.choices[0].message.content == "echo: through kube"
    stream = client.chat.completions.create(model="gpt-flow", messages=[{"role": "user", "content": "s"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: s"

    # A spec change bumps generation; the new config reaches the pod through the watch.
    generation_before = pod.wait_ready()["generation"]
    kube.patch(G, "ModelRoute", "chat", {"spec": {"targets": [{"credentialRef": "upstream", "model": "fake-gpt-4o"}]}})
    wait_for("observedGeneration 2", lambda: (kube.get(G, "ModelRoute", "chat")["status"] or {}).get("observedGeneration") == 2, operator)
    pod.wait_ready(generation=generation_before + 1, timeout=10)
    client.chat.completions.create(model="gpt-flow", messages=[{"role": "user", "content": "x"}])
    assert fake_openai.last_request.json["model"] == "fake-gpt-4o"

    # An invalid edit that the schema lets through (CEL is not evaluated by the emulator) is a
    # permanent condition, and the last valid version keeps serving.
    kube.patch(G, "ModelRoute", "chat", {"spec": {"retry": {"initialBackoffMs": 900, "maxBackoffMs": 10}}})
    cond = wait_for("Invalid condition",
                    lambda: (c := accepted(kube.get(G, "ModelRoute", "chat"))) and c["reason"] == "Invalid" and c, operator)
    assert cond["status"] == "False" and "maxBackoffMs" in cond["message"] and cond["observedGeneration"] == 3
    assert client.chat.completions.create(model="gpt-flow", messages=[{"role": "user", "content": "y"}]).choices

    # Deleting the route removes it from the rendered config and from the pod.
    kube.delete(G, "ModelRoute", "chat")
    wait_for("route gone from the pod", lambda: _status_of(pod, "gpt-flow") == 404, operator)

    # Deleting the gateway garbage-collects what it owns; its objects say they are not selected.
    kube.delete(G, "AIGateway", "gw")
    # The garbage collector removes dependents one by one, in no promised order: wait for each.
    wait_for("ConfigMap collected", lambda: kube.get("v1", "ConfigMap", "gw-config") is None, operator)
    wait_for("Secret collected", lambda: kube.get("v1", "Secret", "gw-credentials") is None, operator)
    wait_for("NotSelected", lambda: (accepted(kube.get(G, "TenantQuota", "team")) or {}).get("reason") == "NotSelected", operator)
    assert "Traceback" not in operator.log(), operator.log()[-4000:]


def _status_of(pod, model: str) -> int:
    r = httpx.post(pod.url + "/v1/chat/completions", headers={"authorization": f"Bearer {TENANT_KEY}"},
                   json={"model": model, "messages": [{"role": "user", "content": "z"}]}, timeout=5)
    return r.status_code
