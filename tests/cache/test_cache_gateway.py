"""The response cache through a real gateway process, real Redis and a fake provider that counts
what reaches it: hits in every client format, unary and streamed, tenant scope, PII, spend."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest
import redis

from tests.gateway.harness import TENANT_KEY, write_crs

KEY_B = "sk-tenant-test-b"
A = {"authorization": f"Bearer {TENANT_KEY}"}
B = {"authorization": f"Bearer {KEY_B}"}
CHAT = {"model": "gpt-test", "temperature": 0, "messages": [{"role": "user", "content": "what is two plus two"}]}


def cache_crs(tmp_path, fake, *, cache: str = "{mode: exact}", guard: bool = False,
              provider: str = "openai-compatible", upstream_key: str = "sk-upstream-test") -> str:
    crs = write_crs(tmp_path / "crs.yaml", fake.base_url, provider=provider, upstream_key=upstream_key, extra=f"""---
apiVersion: aigw.dev/v1alpha1
kind: TenantQuota
metadata: {{name: team-b}}
spec:
  apiKeySecretRefs: [{{name: team-b-key}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: team-b-key}}
stringData: {{apiKey: {KEY_B}}}
---
apiVersion: aigw.dev/v1alpha1
kind: GuardrailPolicy
metadata: {{name: pii}}
spec:
  pii: {{direction: both, action: mask, restoreInResponse: true, entities: [email]}}
""")
    text = crs.read_text().replace("      model: fake\n", "      model: fake\n      pricing: {inputPerMillion: 1000, outputPerMillion: 2000}\n")
    text = text.replace("  model: gpt-test\n", f"  model: gpt-test\n  cache: {cache}\n" + ("  guardrailPolicyRef: pii\n" if guard else ""))
    crs.write_text(text)
    return str(crs)


def wait_stored(redis_url: str, count: int, timeout: float = 5.0) -> None:
    """Entries are written just after the answer went out: poll Redis for them, bounded."""
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    while len(client.keys("aigw:cache:*")) < count:
        assert time.monotonic() < deadline, f"fewer than {count} cache entries after {timeout}s"
        time.sleep(0.02)
    client.close()


def _sse_text(body: str) -> str:
    out = []
    for line in body.splitlines():
        if line.startswith("data: {"):
            for choice in orjson.loads(line[6:]).get("choices", []):
                out.append(choice.get("delta", {}).get("content") or "")
    return "".join(out)


def test_identical_requests_hit_in_every_format_unary_and_streamed(tmp_path, fake_openai, redis_server, start_gateway):
    redis_server.flushall()
    gw = start_gateway("-f", cache_crs(tmp_path, fake_openai), "--redis-url", redis_server.url)
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        calls = [
            ("/v1/chat/completions", CHAT, False),
            ("/v1/chat/completions", {**CHAT, "stream": True, "stream_options": {"include_usage": True},
                                      "messages": [{"role": "user", "content": "a streamed question"}]}, True),
            ("/v1/messages", {"model": "gpt-test", "max_tokens": 50, "temperature": 0,
                              "messages": [{"role": "user", "content": "hello from anthropic"}]}, False),
            ("/v1/messages", {"model": "gpt-test", "max_tokens": 50, "temperature": 0, "stream": True,
                              "messages": [{"role": "user", "content": "hello streamed anthropic"}]}, True),
            ("/v1beta/models/gpt-test:generateContent",
             {"contents": [{"role": "user", "parts": [{"text": "hello gemini"}]}], "generationConfig": {"temperature": 0}},
             False),
            ("/v1beta/models/gpt-test:streamGenerateContent?alt=sse",
             {"contents": [{"role": "user", "parts": [{"text": "hello streamed gemini"}]}],
              "generationConfig": {"temperature": 0}}, True),
        ]
        for path, body, streamed in calls:
            before = len(fake_openai.requests)
            first = http.post(path, headers=A, json=body)
            assert first.status_code == 200, first.text
            assert first.headers["x-aigw-cache"] == "miss", path
            fake_openai.wait_for_requests(before + 1)
            wait_stored(redis_server.url, calls.index((path, body, streamed)) + 1)
            second = http.post(path, headers=A, json=body)
            assert second.status_code == 200 and second.headers["x-aigw-cache"] == "hit", (path, second.headers)
            assert len(fake_openai.requests) == before + 1, path  # the upstream saw one call
            assert second.headers["x-aigw-cost-usd"] == "0.000000000" or float(second.headers["x-aigw-cost-usd"]) == 0
            if streamed:
                if path.startswith("/v1/chat"):
                    assert _sse_text(second.text) == _sse_text(first.text)
                    assert '"usage"' in second.text
                assert second.headers["content-type"].startswith("text/event-stream")
                if "messages" in path:
                    assert '"output_tokens"' in second.text and "message_stop" in second.text
                if "gemini" in path:
                    assert "usageMetadata" in second.text
            else:
                a, b = first.json(), second.json()
                for volatile in ("id", "created", "responseId", "createTime"):
                    a.pop(volatile, None), b.pop(volatile, None)
                assert a == b, path


def test_no_cache_and_nondeterministic_requests_bypass(tmp_path, fake_openai, redis_server, start_gateway):
    redis_server.flushall()
    gw = start_gateway("-f", cache_crs(tmp_path, fake_openai), "--redis-url", redis_server.url)
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        hot = {**CHAT, "temperature": 0.7}
        assert http.post("/v1/chat/completions", headers=A, json=hot).headers["x-aigw-cache"] == "bypass"
        assert http.post("/v1/chat/completions", headers=A, json={**CHAT, "seed": 3, "temperature": 0.7}
                         ).headers["x-aigw-cache"] == "miss"
        r = http.post("/v1/chat/completions", headers={**A, "cache-control": "no-cache, no-store"}, json=CHAT)
        assert r.headers["x-aigw-cache"] == "bypass"
        metrics = httpx.get(gw.ops_url + "/metrics").text
        assert 'aigw_cache_bypass_total{reason="nondeterministic",route="main"}' in metrics


@pytest.mark.parametrize("scope,b_hits", [("tenant", False), ("route", True)])
def test_scope_tenant_never_crosses_tenants_and_route_does(tmp_path, fake_openai, redis_server, start_gateway, scope, b_hits):
    redis_server.flushall()
    gw = start_gateway("-f", cache_crs(tmp_path, fake_openai, cache=f"{{mode: exact, scope: {scope}}}"),
                       "--redis-url", redis_server.url)
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        assert http.post("/v1/chat/completions", headers=A, json=CHAT).headers["x-aigw-cache"] == "miss"
        wait_stored(redis_server.url, 1)
        assert http.post("/v1/chat/completions", headers=A, json=CHAT).headers["x-aigw-cache"] == "hit"
        r = http.post("/v1/chat/completions", headers=B, json=CHAT)
        assert r.headers["x-aigw-cache"] == ("hit" if b_hits else "miss")


def test_pii_never_stored_and_each_tenant_gets_its_own_values(tmp_path, fake_openai, redis_server, start_gateway):
    redis_server.flushall()
    gw = start_gateway("-f", cache_crs(tmp_path, fake_openai, cache="{mode: exact, scope: route}", guard=True),
                       "--redis-url", redis_server.url)

    def ask(headers, email):
        body = {**CHAT, "messages": [{"role": "user", "content": f"write to {email} please"}]}
        return http.post("/v1/chat/completions", headers=headers, json=body)

    with httpx.Client(base_url=gw.url, timeout=10) as http:
        first = ask(A, "alice@example.com")
        assert first.headers["x-aigw-cache"] == "miss", path
        assert "alice@example.com" in first.json()["choices"][0]["message"]["content"]
        wait_stored(redis_server.url, 1)
        r = ask(B, "bob@example.org")
        assert r.headers["x-aigw-cache"] == "hit"
        assert "bob@example.org" in r.json()["choices"][0]["message"]["content"]
        assert "alice" not in r.text
    client = redis.Redis.from_url(redis_server.url)
    keys = client.keys("aigw:cache:*")
    assert keys
    for key in keys:
        value = client.get(key) or b""
        assert b"alice" not in value and b"bob@" not in value and b"example" not in value, value


def test_hits_add_nothing_to_spend(tmp_path, fake_openai, redis_server, start_gateway):
    redis_server.flushall()
    crs = cache_crs(tmp_path, fake_openai)
    text = open(crs).read().replace("  apiKeySecretRefs: [{name: team-a-key}]\n",
                                    "  apiKeySecretRefs: [{name: team-a-key}]\n  budget: {amount: 100}\n")
    open(crs, "w").write(text)
    gw = start_gateway("-f", crs, "--redis-url", redis_server.url)
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        first = http.post("/v1/chat/completions", headers=A, json=CHAT)
        live_cost = float(first.headers["x-aigw-cost-usd"])
        assert live_cost > 0
        wait_stored(redis_server.url, 1)
        for _ in range(4):
            assert http.post("/v1/chat/completions", headers=A, json=CHAT).headers["x-aigw-cache"] == "hit"
        usage = http.get("/v1/usage", headers=A).json()
        assert abs(usage["budget"]["spend_usd"] - live_cost) < 1e-9, usage  # hits added nothing
        assert usage["tokens"]["used"] == first.json()["usage"]["total_tokens"], usage  # nor tokens (countTokensOnHit off)
        assert usage["requests"]["used"] == 5, usage  # but every request counts toward RPM
        metrics = httpx.get(gw.ops_url + "/metrics").text
        saved = [l for l in metrics.splitlines() if l.startswith("aigw_cache_saved_usd_total{")]
        assert saved and abs(float(saved[0].split()[-1]) - 4 * live_cost) < 1e-9, saved


def test_purge_empties_a_route_or_one_tenant(tmp_path, fake_openai, redis_server, start_gateway):
    import subprocess
    import sys

    redis_server.flushall()
    gw = start_gateway("-f", cache_crs(tmp_path, fake_openai), "--redis-url", redis_server.url)
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        http.post("/v1/chat/completions", headers=A, json=CHAT)
        http.post("/v1/chat/completions", headers=B, json=CHAT)
        wait_stored(redis_server.url, 2)

        def purge(*args: str) -> str:
            done = subprocess.run([sys.executable, "-m", "aigw_gateway.cli", "cache", "purge", "--route", "main",
                                   "--redis-url", redis_server.url, *args], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            return done.stdout

        assert "purged 1 " in purge("--tenant", "team-b")
        assert http.post("/v1/chat/completions", headers=B, json=CHAT).headers["x-aigw-cache"] == "miss"
        assert http.post("/v1/chat/completions", headers=A, json=CHAT).headers["x-aigw-cache"] == "hit"
        wait_stored(redis_server.url, 2)
        assert "purged 2 " in purge()
        assert http.post("/v1/chat/completions", headers=A, json=CHAT).headers["x-aigw-cache"] == "miss"


def test_changing_the_route_starts_a_new_key_space(tmp_path, fake_openai, redis_server, start_gateway):
    redis_server.flushall()
    crs = cache_crs(tmp_path, fake_openai)
    gw = start_gateway("-f", crs, "--redis-url", redis_server.url)
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        http.post("/v1/chat/completions", headers=A, json=CHAT)
        wait_stored(redis_server.url, 1)
        assert http.post("/v1/chat/completions", headers=A, json=CHAT).headers["x-aigw-cache"] == "hit"
        generation = http.get("/readyz").json()["generation"]
        text = open(crs).read().replace("cache: {mode: exact}", "cache: {mode: exact, ttlSeconds: 600}")
        open(crs, "w").write(text)
        gw.wait_ready(generation=generation + 1)
        assert http.post("/v1/chat/completions", headers=A, json=CHAT).headers["x-aigw-cache"] == "miss"
