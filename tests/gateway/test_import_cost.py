"""A serving gateway imports what its config uses, no more: each import costs every worker
memory (psycopg alone about 9 MB of RSS), so a gateway without a ledger never loads it, not at
start-up and not while it serves chat requests (plain, streamed) and the ledger's own endpoint."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.fakes.openai_provider import FakeOpenAI
from tests.gateway.harness import free_port
from tests.test_packaging import ROOT, aigw_guarded

LEDGER_ONLY = ("psycopg", "psycopg_binary", "psycopg_pool")
# OpenTelemetry's metrics SDK (imported by redis-py when installed, never used: lean_imports.py)
# brings psutil; the gateway itself does not need it.
UNUSED = ("psutil",)


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
            deadline = time.monotonic() + 30
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            assert proc.poll() is None, proc.communicate()[1]
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
