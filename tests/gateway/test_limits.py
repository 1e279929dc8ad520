"""Tenant limits and budgets through real gateway processes sharing a real Redis."""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict

import httpx
import pytest

from aigw_gateway.limits import estimate_chat_tokens
from tests.gateway.harness import TENANT_KEY, clear_of_a_minute_edge, write_crs

AUTH = {"authorization": f"Bearer {TENANT_KEY}"}


def limited_crs(tmp_path, fake, *, limits: str = "", budget: str = "", fail_mode: str = "open"):
    crs = write_crs(tmp_path / "crs.yaml", fake.base_url, extra=f"""---
apiVersion: aigw.dev/v1alpha1
kind: AIGateway
metadata: {{name: local}}
spec:
  gateway: {{redisFailMode: {fail_mode}}}
""")
    tenant_spec = "  apiKeySecretRefs: [{name: team-a-key}]\n"
    extra = (f"  limits: {limits}\n" if limits else "") + (f"  budget: {budget}\n" if budget else "")
    crs.write_text(crs.read_text().replace(tenant_spec, tenant_spec + extra))
    crs.write_text(crs.read_text().replace("      model: fake\n", "      model: fake\n      pricing: {inputPerMillion: 1000, outputPerMillion: 2000}\n"))
    return str(crs)


def _window_of(resp: httpx.Response, received: float) -> int:
    reset = resp.headers.get("x-ratelimit-reset-tokens", "0s")
    seconds = sum(float(v) * {"ms": 0.001, "s": 1, "m": 60}[u] for v, u in re.findall(r"([\d.]+)(ms|s|m)", reset))
    return round((received + seconds) / 60)


def test_tpm_is_exact_across_two_gateways(tmp_path, fake_openai, redis_server, start_gateway):
    redis_server.flushall()
    limit = 3000
    crs = limited_crs(tmp_path, fake_openai, limits=f"{{tokensPerMinute: {limit}}}")
    gateways = [start_gateway("-f", crs, "--redis-url", redis_server.url) for _ in range(2)]
    body = {"model": "gpt-test", "max_tokens": 40,
            "messages": [{"role": "user", "content": "count these words " * 5}]}
    estimate = estimate_chat_tokens(body, 1024)

    async def client(i: int, out: list) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            for n in range(20):
                gw = gateways[(i + n) % 2]
                r = await http.post(gw.url + "/v1/chat/completions", headers=AUTH, json=body)
                out.append((r, time.time()))

    async def run() -> list:
        out: list = []
        await asyncio.gather(*(client(i, out) for i in range(20)))
        return out

    results = asyncio.run(run())
    admitted = defaultdict(int)
    refused = 0
    for r, t in results:
        if r.status_code == 200:
            admitted[_window_of(r, t)] += r.json()["usage"]["total_tokens"]
        else:
            assert r.status_code == 429, r.text
            err = r.json()["error"]
            assert err["code"] == "rate_limit_exceeded" and err["type"] == "tokens" and int(r.headers["retry-after"]) >= 1
            # Refused only when this request's reservation really no longer fit.
            assert int(r.headers["x-ratelimit-remaining-tokens"]) < estimate, r.headers
            refused += 1
    assert refused > 0
    assert max(admitted.values()) >= 0.8 * limit  # the limit was really reached...
    assert all(total <= limit * 1.01 for total in admitted.values()), admitted  # ...and never overshot


def test_rpm_429_is_openai_shaped_with_headers(tmp_path, fake_openai, redis_server, start_gateway):
    redis_server.flushall()
    gw = start_gateway("-f", limited_crs(tmp_path, fake_openai, limits="{requestsPerMinute: 3}"),
                       "--redis-url", redis_server.url)
    clear_of_a_minute_edge()  # the five requests in one window
    statuses = []
    for _ in range(5):
        r = httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, timeout=10,
                       json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]})
        statuses.append(r.status_code)
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429], statuses
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("requests", "rate_limit_exceeded") and err["request_id"]
    assert r.headers["x-ratelimit-limit-requests"] == "3" and r.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(r.headers["retry-after"]) <= 60


def test_limits_refuse_before_a_guardrail_blocks_and_nothing_goes_upstream(tmp_path, fake_openai, redis_server,
                                                                         start_gateway):
    """The passthrough runs the input guardrails while the limits' script is on its way to Redis:
    a request both refused by its limits and blocked by a guardrail is still the limits' 429, and
    no refused request reaches the provider."""
    redis_server.flushall()
    crs = limited_crs(tmp_path, fake_openai, limits="{requestsPerMinute: 1}")
    text = open(crs).read().replace("  apiKeySecretRefs: [{name: team-a-key}]\n",
                                    "  apiKeySecretRefs: [{name: team-a-key}]\n  guardrailPolicyRef: pii\n")
    open(crs, "w").write(text + """---
apiVersion: aigw.dev/v1alpha1
kind: GuardrailPolicy
metadata: {name: pii}
spec:
  pii: {action: block, entities: [creditCard]}
""")
    gw = start_gateway("-f", crs, "--redis-url", redis_server.url)
    card = {"role": "user", "content": "my card is 4111 1111 1111 1111"}
    clear_of_a_minute_edge()  # the three requests in one window
    r = httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, timeout=10,
                   json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 200, r.text
    for stream in (False, True):
        r = httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, timeout=10,
                       json={"model": "gpt-test", "messages": [card], "stream": stream})
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "rate_limit_exceeded" and "4111" not in r.text
    assert len(fake_openai.requests) == 1


def test_streamed_and_unary_spend_are_equal(tmp_path, fake_openai, redis_server, start_gateway):
    redis_server.flushall()
    gw = start_gateway("-f", limited_crs(tmp_path, fake_openai, budget="{amount: 100, period: monthly}"),
                       "--redis-url", redis_server.url)

    def spend() -> float:
        return httpx.get(gw.url + "/v1/usage", headers=AUTH, timeout=5).json()["budget"]["spend_usd"]

    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "the same words every time"}]}
    r = httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, json=body, timeout=10)
    unary_cost = float(r.headers["x-aigw-cost-usd"])
    assert unary_cost > 0
    before = spend()
    for _ in range(3):
        httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, json=body, timeout=10)
    after_unary = spend()
    for _ in range(3):
        text = httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, json={**body, "stream": True}, timeout=10).text
        assert text.rstrip().endswith("[DONE]")
    deadline = time.monotonic() + 5
    while spend() < after_unary + (after_unary - before) * 0.999 and time.monotonic() < deadline:
        time.sleep(0.05)  # stream settlement runs as the stream closes
    after_stream = spend()
    assert after_unary - before == pytest.approx(3 * unary_cost, rel=1e-6)
    assert after_stream - after_unary == pytest.approx(after_unary - before, rel=1e-9)


def test_budget_block_refuses_with_a_clear_error(tmp_path, fake_openai, redis_server, start_gateway):
    redis_server.flushall()
    gw = start_gateway("-f", limited_crs(tmp_path, fake_openai, budget="{amount: 0.00001, period: daily}"),
                       "--redis-url", redis_server.url)
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "spend it all"}]}
    first = httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, json=body, timeout=10)
    assert first.status_code == 200
    r = httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, json=body, timeout=10)
    assert r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded"
    assert "Budget exceeded" in r.json()["error"]["message"] and r.headers["x-aigw-budget-exceeded"] == "block"
    usage = httpx.get(gw.url + "/v1/usage", headers=AUTH).json()
    assert usage["budget"]["exceeded"] is True and usage["budget"]["remaining_usd"] == 0


@pytest.mark.parametrize("fail_mode, outage_status", [("open", 200), ("closed", 503)])
def test_redis_outage_and_recovery(tmp_path, fake_openai, redis_server_fn, start_gateway, fail_mode, outage_status):
    gw = start_gateway("-f", limited_crs(tmp_path, fake_openai, limits="{requestsPerMinute: 1000}", fail_mode=fail_mode),
                       "--redis-url", redis_server_fn.url)
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}

    def post() -> httpx.Response:
        return httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, json=body, timeout=10)

    assert post().status_code == 200
    redis_server_fn.kill()
    outage = [post() for _ in range(5)]
    assert [r.status_code for r in outage] == [outage_status] * 5, [r.text for r in outage]
    if fail_mode == "closed":
        assert outage[0].json()["error"]["code"] == "limits_unavailable"
    redis_server_fn.start()
    deadline = time.monotonic() + 10
    r = post()
    while "x-ratelimit-limit-requests" not in r.headers and time.monotonic() < deadline:
        time.sleep(0.2)  # degraded (open) or refused (closed) until the limiter sees Redis again
        r = post()
    assert r.status_code == 200 and r.headers.get("x-ratelimit-limit-requests") == "1000"  # limits enforced again
    if fail_mode == "open":
        assert "limits unavailable" in gw.log().lower() or "redis" in gw.log().lower()
