"""`aigw operator` with its safety flags, as a subprocess against a real kube-apiserver: the rules
hold end to end, a labelled Secret is picked up at once, and a namespace deletion goes through
(finalizers released, nothing re-created, no retry loop on the terminating namespace)."""

from __future__ import annotations

from tests.operator.support import OperatorProcess

from .support import Api, cr, secret, wait_for
from .test_safety import GATEWAY_REPO


def test_the_operator_enforces_the_rules_and_lets_a_namespace_go(api: Api, kubeconfig, namespace, tmp_path):
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log",
                               args=["--allowed-image", GATEWAY_REPO, "--standalone", "--namespace", namespace],
                               env={"AIGW_OPERATOR_ALLOW_PRIVATE_BASE_URLS": "false"})
    try:
        def reason(kind: str, name: str) -> str | None:
            return api.condition(kind, name, namespace).get("reason")

        def wait_reason(kind: str, name: str, want: str) -> None:
            wait_for(f"{kind} {name} {want}", lambda: reason(kind, name) == want, timeout=60, logs=operator.log)

        api.create(secret("team-key", namespace, labelled=False, apiKey="sk-team"))
        api.create(cr("TenantQuota", "team", {"apiKeySecretRefs": [{"name": "team-key"}]}, namespace))
        api.create(cr("ProviderCredential", "imds", {"provider": "openai-compatible",
                                                     "baseURL": "http://169.254.169.254/v1"}, namespace))
        api.create(cr("AIGateway", "miner", {"image": "docker.io/someone/miner:1"}, namespace))
        api.create(cr("AIGateway", "gw", {}, namespace))

        wait_reason("AIGateway", "miner", "ImageNotAllowed")
        wait_reason("ProviderCredential", "imds", "Invalid")
        wait_reason("TenantQuota", "team", "SecretNotLabelled")
        wait_reason("AIGateway", "gw", "Accepted")
        assert api.get("Deployment", "miner", namespace) is None

        api.patch("Secret", "team-key", namespace, {"metadata": {"labels": {"aigw.dev/secret": "true"}}})
        wait_reason("TenantQuota", "team", "Accepted")

        # The namespace goes: the AIGateways' finalizers are released and nothing is re-created.
        api.delete_namespace(namespace)
        wait_for("namespace deleted", lambda: api.get("Namespace", namespace) is None, timeout=120, logs=operator.log)
        log = operator.log()
        # A render racing the namespace controller may lose one object under its feet (a 404, then
        # one retry); what must not happen is a loop of retries into the terminating namespace.
        failures = [line for line in log.splitlines() if f"render of namespace {namespace} failed" in line]
        assert len(failures) <= 2 and not any("being terminated" in line for line in failures), failures
        assert "Traceback" not in log, log[-4000:]
    finally:
        operator.stop()
