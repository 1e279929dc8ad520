"""Retries, fallback and circuit breaking through a real gateway process."""

from __future__ import annotations

import time

import httpx

from tests.fakes.openai_provider import Behaviour
from tests.gateway.harness import TENANT_KEY, write_crs

AUTH = {"authorization": f"Bearer {TENANT_KEY}"}


def two_target_crs(tmp_path, primary, backup, route_extra: str) -> str:
    crs = write_crs(tmp_path / "crs.yaml", primary.base_url, extra=f"""---
apiVersion: aigw.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: backup}}
spec:
  provider: openai-compatible
  baseURL: {backup.base_url}
  apiKeySecretRef: {{name: upstream-key, key: apiKey}}
""")
    crs.write_text(crs.read_text().replace(
        "      model: fake\n",
        "      model: fake\n    - credentialRef: backup\n      model: fake\n      priority: 1\n" + route_extra,
    ))
    return str(crs)


def post(gw, content="hi", **kw):
    return httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, timeout=15,
                      json={"model": "gpt-test", "messages": [{"role": "user", "content": content}], **kw})


def test_fallback_after_retries_and_breaker_skips_dead_target(tmp_path, fake_openai_factory, start_gateway):
    primary, backup = fake_openai_factory(), fake_openai_factory()
    primary.set_default(Behaviour(status=503))
    gw = start_gateway("-f", two_target_crs(tmp_path, primary, backup, """  retry: {attempts: 1, initialBackoffMs: 1, maxBackoffMs: 5}
  circuitBreaker: {consecutiveFailures: 4, openSeconds: 1}
"""))
    r = post(gw)
    assert r.status_code == 200 and r.headers["x-aigw-target"] == "backup/fake"
    assert len(primary.requests) == 2  # 1 try + 1 retry, then fallback
    post(gw)  # 2 more failures: the breaker (4 in a row) opens
    assert len(primary.requests) == 4
    for _ in range(3):
        assert post(gw).status_code == 200
    assert len(primary.requests) == 4  # open: skipped without a request
    time.sleep(1.1)
    primary.set_default(None)  # recovered
    r = post(gw)
    assert r.headers["x-aigw-target"] == "upstream/fake" and len(primary.requests) == 5  # the half-open probe closed it


def test_client_error_is_not_retried_or_failed_over(tmp_path, fake_openai_factory, start_gateway):
    primary, backup = fake_openai_factory(), fake_openai_factory()
    primary.set_default(Behaviour(status=422, error_message="messages too long"))
    gw = start_gateway("-f", two_target_crs(tmp_path, primary, backup, ""))
    r = post(gw)
    assert r.status_code == 400 and "messages too long" in r.json()["error"]["message"]
    assert len(primary.requests) == 1 and len(backup.requests) == 0


def test_retry_after_is_honoured(tmp_path, fake_openai, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url)
    crs.write_text(crs.read_text().replace("      model: fake\n", "      model: fake\n  retry: {attempts: 1, initialBackoffMs: 1, maxBackoffMs: 3000}\n"))
    gw = start_gateway("-f", str(crs))
    fake_openai.script(Behaviour(status=429, headers={"retry-after": "1"}))
    r = post(gw)
    first, second = fake_openai.requests
    assert r.status_code == 200 and second.received_at - first.received_at >= 0.95


def test_all_circuits_open_still_tries_the_first_opened_target(tmp_path, fake_openai, start_gateway):
    """Panic routing: with every circuit open the request still reaches a target (and the
    upstream's own answer, here a 400, reaches the client) instead of a 503 without trying."""
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url)
    crs.write_text(crs.read_text().replace(
        "      model: fake\n", "      model: fake\n  retry: {attempts: 0}\n  circuitBreaker: {consecutiveFailures: 1, openSeconds: 30}\n"))
    gw = start_gateway("-f", str(crs))
    fake_openai.set_default(Behaviour(status=500))
    assert post(gw).status_code == 502  # the circuit opens
    fake_openai.set_default(Behaviour(status=400, error_message="bad temperature"))
    r = post(gw)
    assert r.status_code == 400 and "bad temperature" in r.json()["error"]["message"]
    assert len(fake_openai.requests) == 2
    fake_openai.set_default(None)
    assert post(gw).status_code == 200 and len(fake_openai.requests) == 3


def test_client_errors_never_open_the_circuit(tmp_path, fake_openai_factory, start_gateway):
    primary, backup = fake_openai_factory(), fake_openai_factory()
    primary.set_default(Behaviour(status=422, error_message="messages too long"))
    gw = start_gateway("-f", two_target_crs(tmp_path, primary, backup, """  retry: {attempts: 0}
  circuitBreaker: {consecutiveFailures: 1, openSeconds: 30}
"""))
    for _ in range(3):
        assert post(gw).status_code == 400
    primary.set_default(None)
    r = post(gw)
    assert r.status_code == 200 and r.headers["x-aigw-target"] == "upstream/fake" and len(backup.requests) == 0
