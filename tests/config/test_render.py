"""Pure rendering: every object gets a verdict; bad edits keep the last valid version."""

from __future__ import annotations

from aigw_config.render import render
from aigw_config.resources import Resource

NS = "team"


def cred(name="openai", secret="openai-key", **spec):
    return Resource(kind="ProviderCredential", name=name, namespace=NS,
                    spec={"provider": "openai", "apiKeySecretRef": {"name": secret}, **spec})


def secret(name, **data):
    return Resource(kind="Secret", name=name, namespace=NS, data=data)


def route(name="r", model="gpt", creds=("openai",), ts="2026-01-01T00:00:00Z", **spec):
    targets = [{"credentialRef": c, "priority": i} for i, c in enumerate(creds)]
    return Resource(kind="ModelRoute", name=name, namespace=NS, creation_timestamp=ts,
                    spec={"model": model, "targets": targets, **spec})


def tenant(name="t", secret_name="t-key"):
    return Resource(kind="TenantQuota", name=name, namespace=NS, spec={"apiKeySecretRefs": [{"name": secret_name}]})


def verdicts(result):
    return {(k, n): (v.served, v.reason) for (k, n), v in result.verdicts.items()}


def test_full_render():
    r = render([cred(), secret("openai-key", apiKey="sk-up"), route(), tenant(), secret("t-key", apiKey="sk-t")], namespace=NS)
    assert [x.name for x in r.config.routes] == ["r"]
    assert r.config.routes[0].targets[0].model == "gpt"  # defaults to spec.model
    assert r.credentials.provider_keys == {"openai": "sk-up"}
    assert r.credentials.tenant_key_hashes["t"][0].startswith("sha256:")
    assert "sk-t" not in r.config.model_dump_json() and "sk-up" not in r.config.model_dump_json()
    assert r.config.credentials_hash == r.credentials.content_hash()
    assert all(v == (True, "Accepted") for v in verdicts(r).values())


def test_missing_secret_is_temporary_and_cascades():
    r = render([cred(), route(), tenant()], namespace=NS)
    v = r.verdicts[("ProviderCredential", "openai")]
    assert (v.served, v.reason, v.temporary) == (False, "SecretNotFound", True)
    assert "Secret 'openai-key' not found" in v.message
    assert r.verdicts[("ModelRoute", "r")].reason == "RefNotFound"
    assert r.verdicts[("TenantQuota", "t")].reason == "SecretNotFound"
    assert r.config.routes == () and r.config.tenants == ()


def test_secret_missing_key_is_reported():
    r = render([cred(), secret("openai-key", other="x")], namespace=NS)
    assert "key 'apiKey' not found in Secret 'openai-key'" in r.verdicts[("ProviderCredential", "openai")].message


def test_partial_targets_and_conflicts():
    objs = [cred(), secret("openai-key", apiKey="k"), route("a", creds=("openai", "missing")),
            route("b", model="gpt", ts="2026-02-01T00:00:00Z")]
    r = render(objs, namespace=NS)
    assert verdicts(r)[("ModelRoute", "a")] == (True, "PartiallyResolved")
    assert verdicts(r)[("ModelRoute", "b")] == (False, "Conflict")  # the newer claimant loses
    assert "'gpt' (by ModelRoute 'a')" in r.verdicts[("ModelRoute", "b")].message


def test_invalid_spec_is_permanent_and_not_served_without_history():
    r = render([cred(), secret("openai-key", apiKey="k"), route(strategy="nope")], namespace=NS)
    v = r.verdicts[("ModelRoute", "r")]
    assert (v.served, v.reason, v.permanent) == (False, "Invalid", True)
    assert "spec.strategy" in v.message


def test_invalid_edit_keeps_previous_version():
    base = [cred(), secret("openai-key", apiKey="k"), tenant(), secret("t-key", apiKey="sk-t")]
    first = render([*base, route(aliases=["x"])], namespace=NS)
    second = render([*base, route(aliases=["x"], strategy="nope")], namespace=NS,
                    previous=(first.config, first.credentials))
    assert second.config.routes == first.config.routes
    v = second.verdicts[("ModelRoute", "r")]
    assert v.served and v.reason == "Invalid" and "last valid version keeps serving" in v.message
    # ...but a deleted object leaves, history or not.
    third = render(base, namespace=NS, previous=(second.config, second.credentials))
    assert third.config.routes == ()


def test_missing_guardrail_policy_is_not_silently_dropped():
    r = render([cred(), secret("openai-key", apiKey="k"), route(guardrailPolicyRef="pii")], namespace=NS)
    assert verdicts(r)[("ModelRoute", "r")] == (False, "RefNotFound")
    gp = Resource(kind="GuardrailPolicy", name="pii", namespace=NS, spec={"pii": {"entities": ["email"]}})
    r = render([cred(), secret("openai-key", apiKey="k"), route(guardrailPolicyRef="pii"), gp], namespace=NS)
    assert verdicts(r)[("ModelRoute", "r")] == (True, "Accepted")
    assert "pii" in r.config.guardrails


def test_selector_and_namespace_scope():
    gw = Resource(kind="AIGateway", name="gw", namespace=NS, spec={"selector": {"matchLabels": {"team": "a"}}})
    labelled = route("a")
    labelled.labels = {"team": "a"}
    other_ns = route("c", model="other")
    other_ns.namespace = "elsewhere"
    r = render([cred(), secret("openai-key", apiKey="k"), labelled, route("b", model="m2"), other_ns], gateway=gw, namespace=NS)
    assert [x.name for x in r.config.routes] == []  # the credential is not labelled either
    assert verdicts(r)[("ModelRoute", "a")] == (False, "RefNotFound")
    assert ("ModelRoute", "b") not in r.verdicts and ("ModelRoute", "c") not in r.verdicts


def test_shared_tenant_key_conflicts():
    r = render([tenant("a"), tenant("b"), secret("t-key", apiKey="same")], namespace=NS)
    assert verdicts(r)[("TenantQuota", "b")][1] == "Conflict" or verdicts(r)[("TenantQuota", "a")][1] == "Conflict"
