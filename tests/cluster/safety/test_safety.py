"""The operator's safety rules (aigw_operator/policy.py), each on a real kube-apiserver.

Reconciles run in-process with the operator's own client (as the render worker runs them); the
last test runs `aigw operator` as a subprocess with the safety flags.
"""

from __future__ import annotations

import base64
from pathlib import Path

import orjson

from aigw_operator.kube import namespace_gone
from aigw_operator.policy import Policy
from aigw_operator.reconciler import Reconciler

from .support import Api, cr, operator_kube, secret, wait_for

GATEWAY_REPO = "ghcr.io/aigw-dev/aigw-gateway"


async def reconcile(kubeconfig: Path, namespace: str, policy: Policy | None = None) -> bool:
    kube, client = operator_kube(kubeconfig)
    try:
        return await Reconciler(kube, policy=policy or Policy(), identity="safety-test").reconcile(namespace)
    finally:
        await client.close()


async def status_round(kubeconfig: Path, namespace: str) -> None:
    from aigw_operator.settings import OperatorConfig
    from aigw_operator.status.reports import ReportCollector
    from aigw_operator.status.round import Aggregator

    kube, client = operator_kube(kubeconfig)
    collector = ReportCollector(timeout=1.0, grace=0.0)
    try:
        await Aggregator(kube, Reconciler(kube), OperatorConfig(), collector, identity="safety-test").round(namespace)
    finally:
        await collector.close()
        await client.close()


def credentials(api: Api, namespace: str, gateway: str = "gw") -> dict:
    data = api.get("Secret", f"{gateway}-credentials", namespace)["data"]
    return orjson.loads(base64.b64decode(data["credentials.json"]))


def owners(obj: dict) -> list[str]:
    return [ref["uid"] for ref in obj["metadata"].get("ownerReferences") or []]


async def test_a_foreign_secret_or_configmap_is_never_updated_nor_adopted(api, kubeconfig, namespace):
    foreign_secret = api.create(secret("gw-credentials", namespace, labelled=False, token="someone-elses"))
    foreign_cm = api.create({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "gw-config", "namespace": namespace}, "data": {"app": "theirs"}})
    gw = api.create(cr("AIGateway", "gw", {"replicas": 1}, namespace))

    assert await reconcile(kubeconfig, namespace) is False  # unsettled: looked at again later
    cond = api.condition("AIGateway", "gw", namespace)
    assert (cond["status"], cond["reason"]) == ("False", "Conflict")
    assert f"ConfigMap {namespace}/gw-config" in cond["message"] and f"Secret {namespace}/gw-credentials" in cond["message"]
    for kind, before in (("Secret", foreign_secret), ("ConfigMap", foreign_cm)):
        now = api.get(kind, before["metadata"]["name"], namespace)
        assert now["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # untouched
        assert owners(now) == []  # not adopted: not garbage-collected with the AIGateway
    assert api.get("Deployment", "gw", namespace) is None  # nothing half-made either
    assert "Conflict" in [e["reason"] for e in api.list("Event", namespace)]
    await status_round(kubeconfig, namespace)  # the live status says it too
    ready = api.condition("AIGateway", "gw", namespace, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Conflict") and "gw-credentials" in ready["message"]

    # Once the owner removes them, the gateway renders and owns its own.
    api.delete("Secret", "gw-credentials", namespace)
    api.delete("ConfigMap", "gw-config", namespace)
    assert await reconcile(kubeconfig, namespace) is True
    assert api.condition("AIGateway", "gw", namespace)["status"] == "True"
    assert owners(api.get("ConfigMap", "gw-config", namespace)) == [gw["metadata"]["uid"]]


async def test_a_foreign_deployment_of_the_same_name_is_a_conflict(api, kubeconfig, namespace):
    labels = {"app": "theirs"}
    theirs = api.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gw", "namespace": namespace},
                         "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": {
                             "metadata": {"labels": labels},
                             "spec": {"containers": [{"name": "c", "image": "example/theirs:1"}]}}}})
    api.create(cr("AIGateway", "gw", {}, namespace))
    await reconcile(kubeconfig, namespace)
    cond = api.condition("AIGateway", "gw", namespace)
    assert cond["reason"] == "Conflict" and f"Deployment {namespace}/gw" in cond["message"]
    now = api.get("Deployment", "gw", namespace)
    assert now["spec"]["template"]["spec"]["containers"][0]["image"] == "example/theirs:1" and owners(now) == []
    assert api.get("ConfigMap", "gw-config", namespace) is None


async def test_an_image_outside_the_allow_list_is_not_run(api, kubeconfig, namespace):
    policy = Policy(allowed_images=(GATEWAY_REPO,))
    api.create(cr("AIGateway", "gw", {"image": "docker.io/someone/miner:1"}, namespace))
    await reconcile(kubeconfig, namespace, policy)
    cond = api.condition("AIGateway", "gw", namespace)
    assert (cond["status"], cond["reason"]) == ("False", "ImageNotAllowed") and GATEWAY_REPO in cond["message"]
    assert api.get("Deployment", "gw", namespace) is None and api.get("Secret", "gw-credentials", namespace) is None
    assert "ImageNotAllowed" in [e["reason"] for e in api.list("Event", namespace)]

    api.patch("AIGateway", "gw", namespace, {"spec": {"image": f"{GATEWAY_REPO}:0.2.0"}})
    await reconcile(kubeconfig, namespace, policy)
    assert api.condition("AIGateway", "gw", namespace)["status"] == "True"
    (container,) = api.get("Deployment", "gw", namespace)["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{GATEWAY_REPO}:0.2.0"


PRIVATE = {
    "imds": "http://169.254.169.254/latest",
    "imds-v6": "http://[fd00:ec2::254]/latest",
    "gce": "http://metadata.google.internal/computeMetadata/v1",
    "imds-decimal": "http://2852039166/",
    "loopback": "http://127.0.0.1:11434/v1",
    "link-local-v6": "http://[fe80::1]:8080/v1",
}


async def test_base_urls_on_link_local_loopback_and_metadata_addresses_are_refused(api, kubeconfig, namespace):
    api.create(secret("key", namespace, apiKey="sk-provider-secret"))
    for name, url in {**PRIVATE, "node": "http://10.0.0.5:11434/v1"}.items():
        api.create(cr("ProviderCredential", name, {"provider": "openai-compatible", "baseURL": url,
                                                   "apiKeySecretRef": {"name": "key", "key": "apiKey"}}, namespace))
    api.create(cr("AIGateway", "gw", {}, namespace))
    await reconcile(kubeconfig, namespace)
    for name in PRIVATE:
        cond = api.condition("ProviderCredential", name, namespace)
        assert (cond["status"], cond["reason"]) == ("False", "Invalid"), (name, cond)
        assert "spec.baseURL" in cond["message"] and "--allow-private-base-urls" in cond["message"]
    # A model server on a node (or any private) address is fine: only those ranges are refused.
    assert api.condition("ProviderCredential", "node", namespace)["status"] == "True"
    assert set(credentials(api, namespace)["providerKeys"]) == {"node"}  # the key never goes to the others

    # The operator's explicit flag allows them (a local model on the node's loopback, say).
    await reconcile(kubeconfig, namespace, Policy(allow_private_base_urls=True))
    assert all(api.condition("ProviderCredential", n, namespace)["status"] == "True" for n in PRIVATE)


async def test_secrets_are_read_only_when_labelled_for_the_operator(api, kubeconfig, namespace):
    api.create(secret("team-key", namespace, labelled=False, apiKey="sk-tenant-unlabelled"))
    api.create(secret("provider-key", namespace, labelled=False, apiKey="sk-provider-unlabelled"))
    api.create(cr("ProviderCredential", "up", {"provider": "openai", "apiKeySecretRef": {"name": "provider-key"}}, namespace))
    api.create(cr("TenantQuota", "team", {"apiKeySecretRefs": [{"name": "team-key"}]}, namespace))
    api.create(cr("AIGateway", "gw", {}, namespace))
    await reconcile(kubeconfig, namespace)
    for kind, name, ref in (("TenantQuota", "team", "team-key"), ("ProviderCredential", "up", "provider-key")):
        cond = api.condition(kind, name, namespace)
        assert (cond["status"], cond["reason"]) == ("False", "SecretNotLabelled"), cond
        assert f"kubectl label secret {ref} -n {namespace} aigw.dev/secret=true" in cond["message"]
    creds = credentials(api, namespace)
    assert creds["providerKeys"] == {} and creds["tenantKeyHashes"] == {}
    assert "unlabelled" not in orjson.dumps(creds).decode()

    for name in ("team-key", "provider-key"):  # the fix the message names
        api.patch("Secret", name, namespace, {"metadata": {"labels": {"aigw.dev/secret": "true"}}})
    await reconcile(kubeconfig, namespace)
    assert api.condition("TenantQuota", "team", namespace)["status"] == "True"
    assert api.condition("ProviderCredential", "up", namespace)["status"] == "True"


async def test_an_unlabelled_redis_secret_is_not_handed_to_the_pods(api, kubeconfig, namespace):
    api.create(cr("AIGateway", "gw", {"redis": {"urlSecretRef": {"name": "db", "key": "url"}}}, namespace))
    # Not there yet: no pod gets a reference to whatever Secret of that name appears later.
    await reconcile(kubeconfig, namespace)
    assert api.condition("AIGateway", "gw", namespace)["reason"] == "SecretNotFound"
    assert api.get("Deployment", "gw", namespace) is None

    api.create(secret("db", namespace, labelled=False, url="redis://:hunter2@db:6379/0"))
    await reconcile(kubeconfig, namespace)
    cond = api.condition("AIGateway", "gw", namespace)
    assert (cond["status"], cond["reason"]) == ("False", "SecretNotLabelled") and "spec.redis.urlSecretRef" in cond["message"]
    assert api.get("Deployment", "gw", namespace) is None  # no pod is given a secretKeyRef to it

    # An operator started with --read-unlabelled-secrets reads it (the rule dropped on purpose).
    await reconcile(kubeconfig, namespace, Policy(require_secret_label=False))
    (container,) = api.get("Deployment", "gw", namespace)["spec"]["template"]["spec"]["containers"]
    assert {"name": "AIGW_REDIS_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}} in container["env"]


def test_the_rules_are_on_by_default():
    from aigw_operator.settings import OperatorConfig

    config = OperatorConfig.from_env()
    assert config.policy.require_secret_label and not config.policy.allow_private_base_urls
    assert config.policy.allowed_images == (GATEWAY_REPO,)


async def test_a_terminating_namespace_is_recognised_and_not_retried(api, kubeconfig, namespace):
    """What the real server answers to a create in a namespace being deleted is what the render
    worker reads as "drop it" (no retry loop of 403s)."""
    api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "holder", "namespace": namespace, "finalizers": ["example.com/hold"]}})
    api.delete_namespace(namespace)  # stays Terminating while the ConfigMap's finalizer holds
    wait_for("namespace Terminating",
             lambda: (api.get("Namespace", namespace) or {}).get("status", {}).get("phase") == "Terminating")
    kube, client = operator_kube(kubeconfig)
    try:
        reconciler = Reconciler(kube, identity="safety-test")
        doomed = secret("late", namespace, token="x")
        try:
            await kube.upsert("secrets", doomed, None)
            raised: Exception | None = None
        except Exception as exc:  # noqa: BLE001 - the server's own answer is under test
            raised = exc
        assert raised is not None and namespace_gone(raised), raised
        assert await reconciler.render_once(namespace) is True and reconciler.retry_delay_of(namespace) is None
    finally:
        await client.close()
        api.patch("ConfigMap", "holder", namespace, {"metadata": {"finalizers": None}})
