"""Spec validation: errors name the object and the field path; CEL twins agree with pydantic."""

from __future__ import annotations

import pytest

from aigw_config.kinds import SPEC_MODELS, ModelRouteSpec, ProviderCredentialSpec
from aigw_config.resources import ConfigError, Resource, parse_documents


def route(**spec) -> Resource:
    return Resource(kind="ModelRoute", name="r1", namespace="team", spec=spec)


def test_error_names_object_and_field_path():
    with pytest.raises(ConfigError) as exc:
        route(model="m", targets=[{"credentialRef": "ok"}, {"credentialRef": "Bad_Name"}]).parse_spec()
    assert str(exc.value).startswith("ModelRoute team/r1: ")
    assert "spec.targets[1].credentialRef" in str(exc.value)


def test_missing_required_and_unknown_fields_are_reported_together():
    with pytest.raises(ConfigError) as exc:
        route(targets=[{"credentialRef": "a"}], strategyy="priority").parse_spec()
    problems = exc.value.problems
    assert any(p.startswith("spec.model:") for p in problems)
    assert any(p.startswith("spec.strategyy:") for p in problems)


def test_route_needs_a_target():
    with pytest.raises(ConfigError, match=r"spec.targets: List should have at least 1 item"):
        route(model="m", targets=[]).parse_spec()


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"model": "m", "aliases": ["m"], "targets": [{"credentialRef": "a"}]}, "aliases must not repeat spec.model"),
        ({"model": "m", "strategy": "weighted", "targets": [{"credentialRef": "a", "weight": 0}]}, "weight > 0"),
        ({"model": "m", "strategy": "lowest-cost", "targets": [{"credentialRef": "a"}]}, "pricing on every target"),
        ({"model": "m", "targets": [{"credentialRef": "a"}], "retry": {"initialBackoffMs": 500, "maxBackoffMs": 100}},
         "spec.retry: maxBackoffMs must be at least initialBackoffMs"),
        ({"model": "m", "targets": [{"credentialRef": "a"}], "timeouts": {"requestSeconds": 5, "firstByteSeconds": 10}},
         "spec.timeouts: firstByteSeconds must not exceed requestSeconds"),
    ],
)
def test_cross_field_rules(spec, message):
    with pytest.raises(ConfigError, match=message):
        route(**spec).parse_spec()


def test_provider_rules_and_defaults():
    with pytest.raises(ConfigError, match="baseURL is required"):
        Resource(kind="ProviderCredential", name="p", spec={"provider": "openai-compatible"}).parse_spec()
    with pytest.raises(ConfigError, match="apiVersion is required"):
        Resource(kind="ProviderCredential", name="p", spec={"provider": "azure-openai", "baseURL": "https://x"}).parse_spec()
    spec = ProviderCredentialSpec.model_validate({"provider": "openai"})
    assert spec.effective_base_url() == "https://api.openai.com/v1"


def test_custom_pii_pattern_must_compile():
    res = Resource(kind="GuardrailPolicy", name="g", spec={"pii": {"custom": [{"name": "emp", "pattern": "EMP-(\\d"}]}})
    with pytest.raises(ConfigError, match=r"spec.pii.custom\[0\].pattern: invalid regular expression"):
        res.parse_spec()


def test_design_brief_examples_parse():
    # The API sketch of the design brief, verbatim in its field names.
    ModelRouteSpec.model_validate({
        "model": "gpt-4o", "aliases": ["chat-default"], "strategy": "priority",
        "targets": [
            {"credentialRef": "openai-prod", "model": "gpt-4o-2024-08-06", "priority": 0, "weight": 1,
             "pricing": {"inputPerMillion": 2.5, "outputPerMillion": 10}},
            {"credentialRef": "anthropic-prod", "model": "claude-sonnet-4-5", "priority": 1},
        ],
        "retry": {"attempts": 2, "initialBackoffMs": 100, "maxBackoffMs": 2000},
        "timeouts": {"requestSeconds": 120, "firstByteSeconds": 15},
        "circuitBreaker": {"consecutiveFailures": 5, "openSeconds": 30},
        "guardrailPolicyRef": "default-pii",
    })
    SPEC_MODELS["TenantQuota"].model_validate({
        "apiKeySecretRefs": [{"name": "team-search-key", "key": "apiKey"}],
        "limits": {"requestsPerMinute": 600, "tokensPerMinute": 100000},
        "budget": {"amount": 500, "currency": "USD", "period": "monthly", "onExceeded": "block"},
        "allowedModels": ["gpt-4o"], "guardrailPolicyRef": "strict-pii",
    })
    SPEC_MODELS["GuardrailPolicy"].model_validate({
        "failMode": "closed",
        "pii": {"direction": "both", "action": "mask", "restoreInResponse": True,
                "entities": ["email", "phone", "ssn", "creditCard", "ipAddress", "iban", "aadhaar", "pan"],
                "custom": [{"name": "employee-id", "pattern": "EMP-\\d{6}", "action": "mask"}]},
        "promptInjection": {"action": "block"}, "secrets": {"action": "block"},
    })
    SPEC_MODELS["AIGateway"].model_validate({
        "replicas": 2, "image": "aigw-gateway:0.1.0", "redis": {"urlSecretRef": {"name": "redis", "key": "url"}},
        "service": {"type": "ClusterIP", "port": 8080}, "selector": {},
    })


def test_documents_parse_secrets_and_reject_foreign_kinds():
    docs = parse_documents(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {apiKey: c2stMTIz}\nstringData: {other: x}\n",
        "file.yaml",
    )
    assert docs[0].data == {"apiKey": "sk-123", "other": "x"}
    with pytest.raises(ConfigError, match="kind: not an aigw kind"):
        parse_documents("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n", "file.yaml")
    with pytest.raises(ConfigError, match="apiVersion: expected aigw.dev/v1alpha1"):
        parse_documents("apiVersion: aigw.dev/v2\nkind: ModelRoute\nmetadata: {name: p}\nspec: {}\n", "f")
    with pytest.raises(ConfigError, match="f.yaml: invalid YAML"):
        parse_documents("a: [b\n", "f.yaml")
