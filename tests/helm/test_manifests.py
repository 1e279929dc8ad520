"""manifests/: the plain install is the chart's output, and the examples are valid and complete."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from aigw_config.render import render as render_config
from aigw_config.resources import parse_documents

from .support import KUBE_VERSIONS, ROOT, load_script, pod_specs, restricted_violations, validate_object

EXAMPLES = sorted((ROOT / "manifests" / "examples").glob("*.yaml"))
gen_manifests = load_script("gen-manifests")


def test_install_yaml_is_the_regenerated_chart_output(helm_bin):
    current = (ROOT / "manifests" / "install.yaml").read_text()
    assert current == gen_manifests.render(helm_bin), "manifests/install.yaml is stale: run scripts/gen-manifests"


def test_install_yaml_objects_validate_and_run_restricted():
    docs = [d for d in yaml.safe_load_all((ROOT / "manifests" / "install.yaml").read_text()) if d]
    namespace = docs[0]
    assert namespace["kind"] == "Namespace" and namespace["metadata"]["name"] == "aigw-system"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {d["kind"] for d in docs} == {"Namespace", "ServiceAccount", "CustomResourceDefinition", "ClusterRole",
                                         "ClusterRoleBinding", "Deployment"}
    for doc in docs:
        for version in KUBE_VERSIONS:
            validate_object(doc, version)
    for ident, pod in pod_specs(docs):
        assert restricted_violations(pod) == [], ident


def test_there_are_examples_for_the_common_setups():
    names = {p.name for p in EXAMPLES}
    assert {"aigateway.yaml", "openai-with-anthropic-fallback.yaml", "tenant-with-quota-and-budget.yaml",
            "pii-guardrail-policy.yaml", "local-vllm-ollama.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates_against_the_crd_schemas(path: Path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    for doc in docs:
        assert "namespace" not in doc["metadata"], "examples apply into the namespace given with -n"
        try:
            validate_object(doc, KUBE_VERSIONS[0])
        except jsonschema.ValidationError as exc:
            pytest.fail(f"{path.name}: {doc['kind']}/{doc['metadata']['name']}: "
                        f"{'/'.join(map(str, exc.absolute_path))}: {exc.message}")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_parses_with_the_contract_models(path: Path):
    docs = parse_documents(path.read_text(), str(path), "ai")
    [r.parse_spec() for r in docs if r.kind != "Secret"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_self_contained_and_every_object_is_served(path: Path):
    """Applied with the example AIGateway, every object of the file is Accepted: each Secret,
    credential and policy it refers to is in the same file."""
    gateway_file = ROOT / "manifests" / "examples" / "aigateway.yaml"
    resources = parse_documents(path.read_text(), str(path), "ai")
    gateway = parse_documents(gateway_file.read_text(), str(gateway_file), "ai")
    if path != gateway_file:
        resources += gateway
    result = render_config(resources, gateway=gateway[0], namespace="ai")
    own = {(r.kind, r.name) for r in resources if r.kind != "Secret"}
    assert own <= set(result.verdicts), f"objects without a verdict: {own - set(result.verdicts)}"
    refused = {k: (v.reason, v.message) for k, v in result.verdicts.items() if k in own and v.reason != "Accepted"}
    assert not refused


def test_all_examples_together_are_served_by_one_gateway():
    resources = []
    for path in EXAMPLES:
        resources += parse_documents(path.read_text(), str(path), "ai")
    gateways = [r for r in resources if r.kind == "AIGateway"]
    assert len(gateways) == 1, "applying the whole folder must create one gateway"
    result = render_config(resources, gateway=gateways[0], namespace="ai")
    assert all(v.reason == "Accepted" for v in result.verdicts.values()), result.problems()
    assert len(result.config.routes) >= 2 and len(result.config.tenants) >= 2


def test_example_secrets_hold_only_obvious_placeholders():
    for path in EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Secret":
                assert "data" not in doc, f"{path.name}: use stringData so the placeholder is readable"
                for key, value in doc["stringData"].items():
                    assert "PLACEHOLDER" in value, f"{path.name}: {doc['metadata']['name']}.{key} is not an obvious placeholder"


def test_openapi_conversion_honours_nullable_bounds_and_kubernetes_extensions():
    from .support import openapi_to_jsonschema

    schema = openapi_to_jsonschema({
        "type": "object",
        "properties": {
            "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "nullable": True},
            "port": {"x-kubernetes-int-or-string": True},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {"type": "string"}}},
        },
        "x-kubernetes-validations": [{"rule": "true"}],
    })
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"ratio": None, "port": "http", "free": {"a": "x", "b": 1}})
    assert validator.is_valid({"ratio": 0.5, "port": 8080})
    assert not validator.is_valid({"ratio": 0})            # exclusive bound
    assert not validator.is_valid({"port": 1.5})
    assert not validator.is_valid({"ratoi": 0.5})          # a typo the API server would prune silently
    assert "x-kubernetes-validations" not in schema
