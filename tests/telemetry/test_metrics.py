"""/metrics stays consistent under several workers; the access log carries ids, not content."""

from __future__ import annotations

import json

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.harness import TENANT_KEY, write_crs

AUTH = {"authorization": f"Bearer {TENANT_KEY}"}


def totals(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("aigw_requests_total", "gen_ai_client_token_usage_count",
                               "aigw_request_duration_seconds_count"):
                key = sample.name + ("" if sample.name != "aigw_requests_total" else f"[{sample.labels['status']}]")
                out[key] = out.get(key, 0) + sample.value
    return out


def test_metrics_are_consistent_under_two_workers(tmp_path, fake_openai, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url)
    gw = start_gateway("-f", str(crs), "--workers", "2", env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")})
    with httpx.Client(timeout=10) as http:
        for i in range(60):
            model = "gpt-test" if i % 6 else "nope"
            http.post(gw.url + "/v1/chat/completions", headers=AUTH,
                      json={"model": model, "messages": [{"role": "user", "content": "m"}]})
        scrapes = [totals(httpx.get(gw.ops_url + "/metrics").text) for _ in range(6)]
    for scrape in scrapes:  # whichever worker answers, the merged totals are the same
        assert scrape["aigw_requests_total[200]"] == 50
        assert scrape["aigw_requests_total[404]"] == 10
        assert scrape["aigw_request_duration_seconds_count"] == 50
        assert scrape["gen_ai_client_token_usage_count"] == 100  # input and output per request
    assert len(fake_openai.requests) == 50


def test_access_log_has_request_and_trace_ids_but_no_content(tmp_path, fake_openai, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url)
    gw = start_gateway("-f", str(crs), "--access-log")
    r = httpx.post(gw.url + "/v1/chat/completions", headers={**AUTH, "x-request-id": "trace-me-1"},
                   json={"model": "gpt-test", "messages": [{"role": "user", "content": "very secret prompt"}]})
    assert r.status_code == 200 and float(r.headers["x-aigw-overhead-ms"]) >= 0
    lines = [line for line in gw.log().splitlines() if "aigw.access" in line and "trace-me-1" in line]
    assert lines, gw.log()
    record = json.loads(lines[0].split("aigw.access: ", 1)[1])
    assert record["status"] == 200 and record["route"] == "main" and record["tenant"] == "team-a"
    assert record["prompt_tokens"] > 0 and "trace_id" in record
    assert "very secret prompt" not in gw.log() and "echo:" not in gw.log() and TENANT_KEY not in gw.log()
