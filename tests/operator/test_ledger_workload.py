"""spec.ledger: the operator deploys the `<gw>-ledger` writer and gives the gateway pods the URL (pure)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aigw_config.kinds import AIGatewaySpec
from aigw_operator import ledger_workload, workloads
from aigw_operator.workloads import WorkloadOptions

GW = {"apiVersion": "aigw.dev/v1alpha1", "kind": "AIGateway",
      "metadata": {"name": "edge", "namespace": "team", "uid": "uid-9"}}
REDIS = {"urlSecretRef": {"name": "redis", "key": "url"}}
LEDGER = {"postgres": {"urlSecretRef": {"name": "pg-app", "key": "uri"}}, "retentionDays": 90}


def objects(spec: dict) -> list[tuple[str, dict]]:
    options = WorkloadOptions.from_spec(AIGatewaySpec.model_validate(spec), "registry.example/aigw-gateway:1")
    return [(kind.kind, obj) for kind, obj in workloads.workload_objects(GW, options)]


def named(spec: dict, name: str, kind: str = "Deployment") -> dict:
    (obj,) = [o for k, o in objects(spec) if k == kind and o["metadata"]["name"] == name]
    return obj


def test_the_writer_is_one_recreated_replica_with_its_own_tokenless_account():
    dep = named({"redis": REDIS, "ledger": LEDGER}, "edge-ledger")
    spec = dep["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "edge-ledger" and pod["automountServiceAccountToken"] is False
    account = named({"redis": REDIS, "ledger": LEDGER}, "edge-ledger", "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert account["metadata"]["ownerReferences"][0]["uid"] == "uid-9"
    (c,) = pod["containers"]
    assert c["command"] + c["args"] == ["aigw", "ledger", "--namespace", "team", "--gateway", "edge",
                                        "--retention-days", "90"]
    env = {e["name"]: e.get("valueFrom") for e in c["env"]}
    assert env["AIGW_LEDGER_URL"] == {"secretKeyRef": {"name": "pg-app", "key": "uri"}}
    assert env["AIGW_REDIS_URL"] == {"secretKeyRef": {"name": "redis", "key": "url"}}
    # The gateway Service selects gateway pods only, never the writer.
    service = named({"redis": REDIS, "ledger": LEDGER}, "edge", "Service")
    labels = spec["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= labels.items()


def test_gateway_pods_get_the_url_and_leave_writing_to_the_writer():
    dep = named({"redis": REDIS, "ledger": LEDGER}, "edge")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert "--no-ledger-writer" in c["args"]
    assert {"name": "AIGW_LEDGER_URL", "valueFrom": {"secretKeyRef": {"name": "pg-app", "key": "uri"}}} in c["env"]
    plain = named({"redis": REDIS}, "edge")
    assert "--no-ledger-writer" not in plain["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [o["metadata"]["name"] for _, o in objects({"redis": REDIS})].count("edge-ledger") == 0


def test_without_redis_the_gateway_pods_write_directly_and_no_writer_is_deployed():
    names = [o["metadata"]["name"] for _, o in objects({"ledger": LEDGER})]
    assert "edge-ledger" not in names
    (c,) = named({"ledger": LEDGER}, "edge")["spec"]["template"]["spec"]["containers"]
    assert any(e["name"] == "AIGW_LEDGER_URL" for e in c["env"])


def test_a_removed_ledger_scales_the_writer_to_zero_once():
    current = named({"redis": REDIS, "ledger": LEDGER}, "edge-ledger")
    body = ledger_workload.retired(current)
    assert body["spec"]["replicas"] == 0 and body["spec"]["template"] == current["spec"]["template"]
    assert ledger_workload.retired(body) is None


def test_the_contract_names_the_secret_and_bounds_retention():
    spec = AIGatewaySpec.model_validate({"ledger": {"postgres": {"urlSecretRef": {"name": "pg", "key": "uri"}}}})
    assert spec.ledger.retention_days == 400
    with pytest.raises(ValidationError):
        AIGatewaySpec.model_validate({"ledger": {**LEDGER, "retentionDays": 0}})
    with pytest.raises(ValidationError):
        AIGatewaySpec.model_validate({"ledger": {"postgres": {}}})
