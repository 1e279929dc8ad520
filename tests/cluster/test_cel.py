"""Every CEL rule of the CRDs, on the real API server, next to its pydantic twin.

Each rule has a case: a spec the rule rejects and the nearest spec it accepts. The API server
(server-side dry run, nothing stored) and the pydantic model (`aigw serve -f`, `aigw render`, the
operator) must both reject the first with the rule's message and both accept the second. A rule
added to the CRDs without a case here fails the coverage test.
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from aigw_config.registry import KINDS

from .conftest import crd_documents
from .support import Cluster

from aigw_config.kinds import ANONYMOUS_NAME, OBJECT_RULES, object_problems

G = "aigw.dev/v1alpha1"
TARGET = {"credentialRef": "openai"}

# message -> (kind, rejected spec, accepted spec)
CASES: dict[str, tuple[str, dict, dict]] = {
    "baseURL is required for provider azure-openai and openai-compatible": (
        "ProviderCredential", {"provider": "openai-compatible"},
        {"provider": "openai-compatible", "baseURL": "https://llm.example/v1"}),
    "apiVersion is required for provider azure-openai": (
        "ProviderCredential", {"provider": "azure-openai", "baseURL": "https://x.openai.azure.com"},
        {"provider": "azure-openai", "baseURL": "https://x.openai.azure.com", "apiVersion": "2024-10-21"}),
    "region is required for provider bedrock": (
        "ProviderCredential", {"provider": "bedrock"}, {"provider": "bedrock", "region": "us-east-1"}),
    "maxBackoffMs must be at least initialBackoffMs": (
        "ModelRoute", {"model": "m", "targets": [TARGET], "retry": {"initialBackoffMs": 500, "maxBackoffMs": 100}},
        {"model": "m", "targets": [TARGET], "retry": {"initialBackoffMs": 100, "maxBackoffMs": 100}}),
    "firstByteSeconds must not exceed requestSeconds": (
        "ModelRoute", {"model": "m", "targets": [TARGET], "timeouts": {"requestSeconds": 10, "firstByteSeconds": 20}},
        {"model": "m", "targets": [TARGET], "timeouts": {"requestSeconds": 20, "firstByteSeconds": 20}}),
    "aliases must not repeat spec.model": (
        "ModelRoute", {"model": "m", "aliases": ["m"], "targets": [TARGET]},
        {"model": "m", "aliases": ["n"], "targets": [TARGET]}),
    "strategy weighted needs at least one target with weight > 0": (
        "ModelRoute", {"model": "m", "strategy": "weighted", "targets": [{**TARGET, "weight": 0}]},
        {"model": "m", "strategy": "weighted", "targets": [{**TARGET, "weight": 1}]}),
    "strategy lowest-cost needs pricing on every target": (
        "ModelRoute", {"model": "m", "strategy": "lowest-cost", "targets": [TARGET]},
        {"model": "m", "strategy": "lowest-cost",
         "targets": [{**TARGET, "pricing": {"inputPerMillion": 1, "outputPerMillion": 2}}]}),
    "mode semantic needs semantic.embeddingRoute": (
        "ModelRoute", {"model": "m", "targets": [TARGET], "cache": {"mode": "semantic"}},
        {"model": "m", "targets": [TARGET], "cache": {"mode": "semantic", "semantic": {"embeddingRoute": "emb"}}}),
    "restoreInResponse needs action mask": (
        "GuardrailPolicy", {"pii": {"action": "redact", "restoreInResponse": True}},
        {"pii": {"action": "mask", "restoreInResponse": True}}),
    "maxReplicas must be at least minReplicas": (
        "AIGateway", {"autoscaling": {"minReplicas": 3, "maxReplicas": 2}},
        {"autoscaling": {"minReplicas": 2, "maxReplicas": 2}}),
    "give exactly one of minAvailable and maxUnavailable": (
        "AIGateway", {"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}},
        {"podDisruptionBudget": {"minAvailable": 1}}),
}


def _messages(node: object) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for rule in node.get("x-kubernetes-validations") or []:
            found.add(rule["message"])
        for child in node.values():
            found |= _messages(child)
    elif isinstance(node, list):
        for child in node:
            found |= _messages(child)
    return found


# Rules on a whole object (metadata.name): message -> (kind, rejected name, accepted name, spec).
NAME_CASES: dict[str, tuple[str, str, str, dict]] = {
    OBJECT_RULES["TenantQuota"][0].message: ("TenantQuota", ANONYMOUS_NAME, "anonymous-callers", {}),
}


def test_every_cel_rule_of_the_crds_has_a_case():
    in_crds = set().union(*(_messages(doc["spec"]) for doc in crd_documents()))
    cases = set(CASES) | set(NAME_CASES)
    assert in_crds == cases, f"rules without a case: {in_crds - cases}; stale cases: {cases - in_crds}"


@pytest.mark.parametrize("message", sorted(NAME_CASES))
def test_name_rules_agree_with_their_python_twin(cluster: Cluster, cel_namespace: str, message: str):
    kind, rejected, accepted, spec = NAME_CASES[message]

    def server(name: str) -> str:
        obj = {"apiVersion": G, "kind": kind, "metadata": {"name": name, "namespace": cel_namespace}, "spec": spec}
        out = cluster.kubectl("create", "--dry-run=server", "-f", "-", "-o", "name", input=json.dumps(obj), check=False)
        return "" if out.returncode == 0 else out.stderr

    assert message in server(rejected)
    assert message in object_problems(kind, rejected)
    assert server(accepted) == "" and object_problems(kind, accepted) == []


def _server_verdict(cluster: Cluster, namespace: str, kind: str, spec: dict) -> str:
    obj = {"apiVersion": G, "kind": kind, "metadata": {"name": "cel-case", "namespace": namespace}, "spec": spec}
    out = cluster.kubectl("create", "--dry-run=server", "-f", "-", "-o", "name", input=json.dumps(obj), check=False)
    return "" if out.returncode == 0 else out.stderr


def _pydantic_verdict(kind: str, spec: dict) -> str:
    try:
        KINDS[kind].spec_model.model_validate(spec)
    except (ValidationError, ValueError) as exc:
        return str(exc)
    return ""


@pytest.fixture(scope="module")
def cel_namespace(cluster: Cluster, crds: list[str]):
    name = cluster.create_namespace("cel")
    yield name
    cluster.delete_namespace(name)


@pytest.mark.parametrize("message", sorted(CASES))
def test_api_server_and_pydantic_agree(cluster: Cluster, cel_namespace: str, message: str):
    namespace = cel_namespace
    kind, rejected, accepted = CASES[message]
    server = _server_verdict(cluster, namespace, kind, rejected)
    assert message in server, f"the API server did not reject with {message!r}: {server or 'accepted'}"
    assert message in _pydantic_verdict(kind, rejected)
    assert _server_verdict(cluster, namespace, kind, accepted) == ""
    assert _pydantic_verdict(kind, accepted) == ""
