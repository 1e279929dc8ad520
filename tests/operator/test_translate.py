"""Operator translation is pure: objects and status patches from render results."""

from __future__ import annotations

import base64

import orjson

from aigw_config.config import GatewayConfig, GatewayCredentials
from aigw_config.render import Verdict
from aigw_operator import translate

GW = {"apiVersion": "aigw.dev/v1alpha1", "kind": "AIGateway",
      "metadata": {"name": "gw", "namespace": "team", "uid": "uid-1"}}


def test_config_objects_are_owned_and_carry_generation():
    config = GatewayConfig().sealed(3)
    creds = GatewayCredentials(provider_keys={"p": "sk-x"})
    cm, secret = translate.config_objects(GW, config, creds)
    assert cm["metadata"]["name"] == "gw-config" and secret["metadata"]["name"] == "gw-credentials"
    for obj in (cm, secret):
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref == {"apiVersion": "aigw.dev/v1alpha1", "kind": "AIGateway", "name": "gw", "uid": "uid-1",
                       "controller": True, "blockOwnerDeletion": True}
        assert obj["metadata"]["annotations"]["aigw.dev/config-generation"] == "3"
    assert "sk-x" not in orjson.dumps(cm).decode()
    assert orjson.loads(base64.b64decode(secret["data"]["credentials.json"]))["providerKeys"] == {"p": "sk-x"}
    assert translate.previous_pair(cm, secret)[0] == config


def test_next_generation_bumps_only_on_content_change():
    first = GatewayConfig().sealed(1)
    assert translate.next_generation(None, GatewayConfig()) == 1
    assert translate.next_generation((first, GatewayCredentials()), GatewayConfig()) == 1
    changed = GatewayConfig(settings={"allowAnonymous": "public"})
    assert translate.next_generation((first, GatewayCredentials()), changed) == 2


def test_status_patch_is_none_when_nothing_changes():
    verdict = Verdict("ModelRoute", "r", 2, True, "Accepted", "served with 1 target(s)")
    cond = translate.accepted_condition(verdict, 2)
    patch = translate.status_patch({}, cond, 2)
    assert patch["status"]["observedGeneration"] == 2
    (c,) = patch["status"]["conditions"]
    assert (c["type"], c["status"], c["reason"]) == ("Accepted", "True", "Accepted") and c["lastTransitionTime"]
    assert translate.status_patch(patch["status"], cond, 2) is None
    # kopf's own fields in status are left alone
    assert translate.status_patch({**patch["status"], "kopf": {"progress": {}}}, cond, 2) is None


def test_conditions_for_each_outcome():
    missing = translate.accepted_condition(Verdict("TenantQuota", "t", 1, False, "SecretNotFound", "Secret 'k' not found"), 1)
    assert (missing.status, missing.reason) == ("False", "SecretNotFound")
    kept = translate.accepted_condition(Verdict("ModelRoute", "r", 4, True, "Invalid", "spec.x: bad; the last valid version keeps serving"), 4)
    assert (kept.status, kept.reason) == ("False", "Invalid")
    unselected = translate.accepted_condition(None, 1)
    assert (unselected.status, unselected.reason) == ("False", "NotSelected")


def test_referenced_secrets_tolerate_invalid_specs():
    assert translate.referenced_secrets("TenantQuota", {"apiKeySecretRefs": [{"name": "a"}, "junk", {"x": 1}]}) == {"a"}
    assert translate.referenced_secrets("ProviderCredential", {"apiKeySecretRef": None}) == set()
    assert translate.referenced_secrets("AIGateway", {"redis": {"urlSecretRef": {"name": "r"}}}) == {"r"}


def test_pii_hash_key_is_generated_once_and_kept():
    from aigw_config.render import render

    tokens = iter(f"token-{i}" for i in range(10))
    config, credentials = translate.seal(render([]), None, new_token=lambda: next(tokens))
    assert credentials.pii_hash_key and credentials.pii_hash_key != credentials.report_token
    assert config.credentials_hash == credentials.content_hash()
    _, again = translate.seal(render([]), (config, credentials), new_token=lambda: next(tokens))
    assert again.pii_hash_key == credentials.pii_hash_key  # a re-render keeps the key (and every hash tag)
    assert "pii_hash_key='<set>'" in repr(again) and credentials.pii_hash_key not in repr(again)
