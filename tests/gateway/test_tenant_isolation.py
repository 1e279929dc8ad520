"""One tenant cannot switch off another tenant's limits, through a real gateway on a real Redis.

The finding this reproduces: two requests with `max_tokens: 18446744073709551615` made the
reservation overflow Redis's integers; the script error counted as "Redis down", the limiter
tripped, and another tenant over its budget got 200s (fail mode open) or an unrelated 503 (closed).
"""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.harness import TENANT_KEY, clear_of_a_minute_edge, write_crs

HUGE = 18446744073709551615
KEY_B = "sk-tenant-b-over-budget"
A = {"authorization": f"Bearer {TENANT_KEY}"}
B = {"authorization": f"Bearer {KEY_B}"}


def two_tenants(tmp_path, fake, fail_mode: str) -> str:
    crs = write_crs(tmp_path / "crs.yaml", fake.base_url, extra=f"""---
apiVersion: aigw.dev/v1alpha1
kind: AIGateway
metadata: {{name: local}}
spec:
  gateway: {{redisFailMode: {fail_mode}}}
---
apiVersion: aigw.dev/v1alpha1
kind: TenantQuota
metadata: {{name: team-b}}
spec:
  apiKeySecretRefs: [{{name: team-b-key}}]
  budget: {{amount: 0, period: monthly}}
---
apiVersion: v1
kind: Secret
metadata: {{name: team-b-key}}
stringData: {{apiKey: {KEY_B}}}
""")
    tenant_spec = "  apiKeySecretRefs: [{name: team-a-key}]\n"
    crs.write_text(crs.read_text().replace(tenant_spec, tenant_spec + "  budget: {amount: 1000, period: monthly}\n", 1))
    return str(crs)


@pytest.mark.parametrize("fail_mode", ["open", "closed"])
def test_huge_max_tokens_cannot_switch_off_other_tenants_limits(
    tmp_path, fake_openai, redis_server, start_gateway, fail_mode
):
    gw = start_gateway("-f", two_tenants(tmp_path, fake_openai, fail_mode), "--redis-url", redis_server.url)
    chat = gw.url + "/v1/chat/completions"
    for field in ("max_tokens", "max_completion_tokens", "n"):
        for _ in range(2):
            r = httpx.post(chat, headers=A, timeout=10,
                           json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}], field: HUGE})
            assert r.status_code == 400, r.text
            err = r.json()["error"]
            assert err["param"] == field and err["type"] == "invalid_request_error" and field in err["message"]
    for _ in range(3):  # tenant B is over its budget: refused for that, neither served nor 503
        r = httpx.post(chat, headers=B, timeout=10, json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded", r.text
    ok = httpx.post(chat, headers=A, timeout=10, json={"model": "gpt-test", "max_tokens": 1_000_000,
                                                        "messages": [{"role": "user", "content": "x"}]})
    assert ok.status_code == 200 and "x-aigw-budget-limit-usd" in ok.headers, ok.text  # A's limits are checked


def test_each_api_names_its_own_field(tmp_path, fake_openai, redis_server, start_gateway):
    gw = start_gateway("-f", two_tenants(tmp_path, fake_openai, "closed"), "--redis-url", redis_server.url)
    msgs = [{"role": "user", "content": "x"}]
    r = httpx.post(gw.url + "/v1/messages", headers=A, timeout=10,
                   json={"model": "gpt-test", "max_tokens": HUGE, "messages": msgs})
    assert r.status_code == 400 and "max_tokens" in r.text, r.text
    contents = [{"role": "user", "parts": [{"text": "x"}]}]
    for field in ("maxOutputTokens", "candidateCount"):
        r = httpx.post(gw.url + "/v1beta/models/gpt-test:generateContent", headers=A, timeout=10,
                       json={"contents": contents, "generationConfig": {field: HUGE}})
        assert r.status_code == 400 and f"generationConfig.{field}" in r.text, r.text


def test_gateways_of_two_namespaces_share_a_redis_but_not_counters(tmp_path, fake_openai, redis_server, start_gateway):
    """The same TenantQuota name (and key) in two namespaces, one Redis: separate counters and spend."""
    redis_server.flushall()
    crs = tmp_path / "crs.yaml"
    write_crs(crs, fake_openai.base_url)
    tenant_spec = "  apiKeySecretRefs: [{name: team-a-key}]\n"
    crs.write_text(crs.read_text().replace(tenant_spec, tenant_spec + "  limits: {requestsPerMinute: 3}\n"
                                           "  budget: {amount: 100, period: monthly}\n", 1)
                   .replace("      model: fake\n", "      model: fake\n      pricing: {inputPerMillion: 1000, outputPerMillion: 2000}\n"))
    east = start_gateway("-f", str(crs), "--namespace", "east", "--redis-url", redis_server.url)
    west = start_gateway("-f", str(crs), "--namespace", "west", "--redis-url", redis_server.url)
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}
    clear_of_a_minute_edge()  # every request below in one window
    statuses = [httpx.post(east.url + "/v1/chat/completions", headers=A, json=body, timeout=10).status_code
                for _ in range(4)]
    assert statuses == [200, 200, 200, 429], statuses  # east's own limit is enforced
    r = httpx.post(west.url + "/v1/chat/completions", headers=A, json=body, timeout=10)
    assert r.status_code == 200 and r.headers["x-ratelimit-remaining-requests"] == "2", r.headers  # west is untouched
    east_usage = httpx.get(east.url + "/v1/usage", headers=A, timeout=5).json()
    west_usage = httpx.get(west.url + "/v1/usage", headers=A, timeout=5).json()
    assert east_usage["requests"]["used"] == 3 and west_usage["requests"]["used"] == 1
    assert east_usage["budget"]["spend_usd"] == pytest.approx(3 * west_usage["budget"]["spend_usd"], rel=1e-9)
    keys = sorted(k.decode() if isinstance(k, bytes) else k for k in redis_server.command("KEYS", "aigw:*"))
    assert keys and all(k.startswith(("aigw:{east/local/team-a}:", "aigw:{west/local/team-a}:")) for k in keys), keys
    assert {k.split("}")[0] for k in keys} == {"aigw:{east/local/team-a", "aigw:{west/local/team-a"}
