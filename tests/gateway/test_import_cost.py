"""A serving gateway imports what its config uses, no more: each import costs every worker
memory (psycopg alone about 9 MB of RSS), so a gateway without a ledger never loads it, not at
start-up and not while it serves chat requests (plain, streamed) and the ledger's own endpoint.
Nor does a gateway that uses Redis for its limits only load redis-py's client (7 MB): the limiter
has its own lean client, and redis-py's exception classes load without it (redis_errors.py)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.fakes.openai_provider import FakeOpenAI
from tests.fakes.redis_server import RedisServer
from tests.gateway.harness import TENANT_KEY, free_port
from tests.gateway.test_limits import limited_crs
from tests.test_packaging import ROOT, aigw_guarded

LEDGER_ONLY = ("psycopg", "psycopg_binary", "psycopg_pool")
# OpenTelemetry's metrics SDK (imported by redis-py when installed, never used: lean_imports.py)
# brings psutil; the gateway itself does not need it. aiohttp (with yarl, multidict: several MB)
# stays out too: the upstream client speaks HTTP/1.1 itself (upstream.py).
UNUSED = ("psutil", "aiohttp")
# redis-py's client (the package runs all of them): only a cache, the responses store, the ledger
# or a URL the lean client does not take need it. `redis.exceptions` alone is allowed.
REDIS_PY_CLIENT = ("redis.asyncio", "redis.client", "redis.connection", "redis.commands", "redis.cluster")


def _wait_ready(proc, base: str) -> None:
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[1]
    raise AssertionError("the gateway did not become ready in 30 s")


def test_serve_without_a_ledger_never_imports_psycopg_nor_unused_libraries(tmp_path: Path) -> None:
    with FakeOpenAI(api_key="sk-fake-upstream") as fake:
        config = tmp_path / "gateway.yaml"
        config.write_text((ROOT / "examples" / "quickstart" / "gateway.yaml").read_text()
                          .replace("http://127.0.0.1:8081/v1", fake.base_url))
        port = free_port()
        proc = aigw_guarded(["serve", "-f", str(config), "--port", str(port), "--ops-port", "0"],
                            forbidden=(*LEDGER_ONLY, *UNUSED))
        base = f"http://127.0.0.1:{port}"
        auth = {"authorization": "Bearer sk-aigw-demo"}
        body = {"model": "demo", "messages": [{"role": "user", "content": "hello there"}]}
        try:
            _wait_ready(proc, base)
            with httpx.Client(base_url=base, headers=auth, timeout=10) as client:
                plain = client.post("/v1/chat/completions", json=body)
                assert plain.status_code == 200, plain.text
                assert plain.json()["choices"][0]["message"]["content"] == "echo: hello there"
                with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as stream:
                    assert stream.status_code == 200
                    assert b"data: [DONE]" in b"".join(stream.iter_bytes())
                history = client.get("/v1/usage/history")
                assert history.status_code == 503, history.text  # no ledger here: says so
            assert proc.poll() is None, proc.communicate()[1]
        finally:
            proc.terminate()
            _, stderr = proc.communicate(timeout=20)
    assert "FORBIDDEN IMPORT" not in stderr, stderr


def test_serve_with_redis_limits_only_never_imports_redis_py_client(tmp_path: Path, fake_openai,
                                                                    redis_server: RedisServer) -> None:
    crs = limited_crs(tmp_path, fake_openai, limits="{requestsPerMinute: 1000, tokensPerMinute: 100000}",
                      budget="{amount: 100, period: monthly}")
    port, ops_port = free_port(), free_port()
    proc = aigw_guarded(["serve", "-f", crs, "--port", str(port), "--ops-port", str(ops_port),
                         "--redis-url", redis_server.url], forbidden=(*LEDGER_ONLY, *REDIS_PY_CLIENT))
    base = f"http://127.0.0.1:{port}"
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hello there"}]}
    try:
        _wait_ready(proc, base)
        ready = httpx.get(f"{base}/readyz", timeout=5).json()
        assert ready["redis"] == "ok" and ready["limits"] == "redis", ready
        with httpx.Client(base_url=base, headers={"authorization": f"Bearer {TENANT_KEY}"}, timeout=10) as client:
            plain = client.post("/v1/chat/completions", json=body)
            assert plain.status_code == 200, plain.text
            assert redis_server.command("KEYS", "*team-a*"), "the limiter counted in Redis"
            with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as stream:
                assert stream.status_code == 200
                assert b"data: [DONE]" in b"".join(stream.iter_bytes())
        metrics = httpx.get(f"http://127.0.0.1:{ops_port}/metrics", timeout=10)
        assert metrics.status_code == 200 and 'aigw_budget_remaining_usd{tenant="team-a"}' in metrics.text
        assert proc.poll() is None, proc.communicate()[1]
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=20)
    assert "FORBIDDEN IMPORT" not in stderr, stderr
