"""/metrics and /internal/report live on the ops port only; a scrape reads Redis at most once per interval."""

from __future__ import annotations

import httpx

from tests.gateway.harness import TENANT_KEY, write_crs
from tests.gateway.test_limits import limited_crs
from tests.limits.monitor import Monitor

AUTH = {"authorization": f"Bearer {TENANT_KEY}"}


def test_ops_endpoints_are_not_on_the_api_port(tmp_path, fake_openai, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url)
    gw = start_gateway("-f", str(crs), "--report-token", "rt-1")
    assert httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, timeout=10,
                      json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
    for path in ("/metrics", "/internal/report"):
        r = httpx.get(gw.url + path, headers={"authorization": "Bearer rt-1"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path
        assert "team-a" not in r.text
    metrics = httpx.get(gw.ops_url + "/metrics")
    assert metrics.status_code == 200 and 'tenant="team-a"' in metrics.text
    assert httpx.get(gw.ops_url + "/internal/report").status_code == 401
    report = httpx.get(gw.ops_url + "/internal/report", headers={"authorization": "Bearer rt-1"})
    assert report.status_code == 200 and report.json()["tenants"][0]["name"] == "team-a"
    assert httpx.post(gw.ops_url + "/v1/chat/completions", headers=AUTH, json={}).status_code == 404  # no API there


def test_scrapes_read_redis_once_per_interval(tmp_path, fake_openai, redis_server, start_gateway):
    crs = limited_crs(tmp_path, fake_openai, budget="{amount: 100, period: monthly}")
    # marked before the gateway starts: the one refresh is inside the window whoever triggers it
    # (a readiness probe or the first scrape below)
    monitor = Monitor(redis_server)
    start = monitor.mark()
    gw = start_gateway("-f", crs, "--redis-url", redis_server.url, "--metrics-refresh-seconds", "300")
    scrapes = [httpx.get(gw.ops_url + "/metrics").text for _ in range(5)]
    end = monitor.mark()
    assert all('aigw_budget_remaining_usd{tenant="team-a"} 100.0' in s for s in scrapes)
    reads = [line for line in monitor.client_commands_between(start, end) if "team-a" in line]
    assert 1 <= len(reads) <= 3, reads  # one refresh (the budget's keys), not one per scrape
