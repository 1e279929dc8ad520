"""Callers without a key get the limits, budget and allowedModels of the TenantQuota that
`spec.gateway.allowAnonymous` names; `anonymous` is a reserved TenantQuota name; without the
setting (or without its quota) they are refused. Real gateway processes on a real Redis."""

from __future__ import annotations

import httpx

from tests.gateway.harness import TENANT_KEY, write_crs

MSGS = [{"role": "user", "content": "x"}]


def _crs(tmp_path, fake, anonymous: str, extra: str = "") -> str:
    crs = write_crs(tmp_path / "crs.yaml", fake.base_url, extra=f"""---
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {{name: other}}
spec: {{model: other-model, targets: [{{credentialRef: upstream, model: fake}}]}}
---
apiVersion: aigw.dev/v1alpha1
kind: AIGateway
metadata: {{name: local}}
spec: {{gateway: {{allowAnonymous: {anonymous}}}}}
{extra}""")
    return str(crs)


PUBLIC = """---
apiVersion: aigw.dev/v1alpha1
kind: TenantQuota
metadata: {name: public}
spec:
  limits: {requestsPerMinute: 2}
  allowedModels: [gpt-test]
"""


def test_anonymous_callers_get_the_referenced_quota(tmp_path, fake_openai, redis_server, start_gateway):
    redis_server.flushall()
    gw = start_gateway("-f", _crs(tmp_path, fake_openai, "public", PUBLIC), "--redis-url", redis_server.url)
    chat = gw.url + "/v1/chat/completions"
    r = httpx.post(chat, json={"model": "other-model", "messages": MSGS}, timeout=10)
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"  # allowedModels apply
    answers = [httpx.post(chat, json={"model": "gpt-test", "messages": MSGS}, timeout=10) for _ in range(5)]
    assert answers[0].status_code == 200 and answers[0].headers["x-ratelimit-limit-requests"] == "2"  # its limits
    assert 429 in [a.status_code for a in answers], [a.text for a in answers]  # (5 requests span 2 windows at most)
    keys = {k.decode() for k in redis_server.command("KEYS", "aigw:*")}
    assert keys and all(k.startswith("aigw:{default/local/public}:") for k in keys), keys
    keyed = httpx.post(chat, headers={"authorization": f"Bearer {TENANT_KEY}"}, timeout=10,
                       json={"model": "other-model", "messages": MSGS})
    assert keyed.status_code == 200  # a keyed tenant is not limited by the anonymous quota
    wrong = httpx.post(chat, headers={"authorization": "Bearer wrong"}, json={"model": "gpt-test", "messages": MSGS})
    assert wrong.status_code == 401  # a wrong key is still wrong


def test_anonymous_is_refused_without_its_quota_and_the_name_is_reserved(tmp_path, fake_openai, start_gateway):
    reserved = """---
apiVersion: aigw.dev/v1alpha1
kind: TenantQuota
metadata: {name: anonymous}
spec:
  apiKeySecretRefs: [{name: team-a-key}]
"""
    gw = start_gateway("-f", _crs(tmp_path, fake_openai, "missing-quota", reserved))
    r = httpx.post(gw.url + "/v1/chat/completions", json={"model": "gpt-test", "messages": MSGS}, timeout=10)
    assert r.status_code == 401, r.text  # fail closed: never served without limits
    log = gw.log()
    assert "'anonymous' is reserved" in log and "allowAnonymous: TenantQuota 'missing-quota' not found" in log


def test_allow_anonymous_true_is_refused_naming_the_field(tmp_path, fake_openai, start_gateway):
    gw = start_gateway("-f", _crs(tmp_path, fake_openai, "true"))
    r = httpx.post(gw.url + "/v1/chat/completions", json={"model": "gpt-test", "messages": MSGS}, timeout=10)
    assert r.status_code == 401
    assert "spec.gateway.allowAnonymous" in gw.log() and "name of a TenantQuota" in gw.log()
