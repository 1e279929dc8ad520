"""A client that leaves mid-stream is charged (the reservation, when the upstream's usage never
came) and has a row; after a mixed run `aigw ledger check` shows zero difference."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timezone

import httpx

from tests.gateway.harness import ROOT
from tests.ledger.support import (
    KEY_A, KEY_B, chat, embeddings, expected_cost, gemini, messages, wait_rows, write_config,
)  # fmt: skip

MIXED = int(os.environ.get("AIGW_LEDGER_MIXED", "120"))  # the 10,000: run by hand with this variable


def leave_mid_stream(client: httpx.Client, key: str) -> str:
    body = {"model": "m-slow", "max_tokens": 50, "stream": True,
            "messages": [{"role": "user", "content": "a long answer please"}]}
    with client.stream("POST", "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}) as r:
        assert r.status_code == 200
        for _ in r.iter_raw():  # the first chunk arrived: the client goes away
            break
        return r.headers["x-request-id"]


def ledger_check(redis_url: str, ledger_url: str, tenant: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'gateway'}{os.pathsep}{ROOT / 'operator'}"}
    period = datetime.now(timezone.utc).strftime("%Y-%m")
    return subprocess.run(
        [sys.executable, "-m", "aigw_gateway.cli", "ledger", "check", "--tenant", tenant, "--period", period,
         "--redis-url", redis_url, "--postgres-url", ledger_url],
        capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=60,
    )  # fmt: skip


def test_disconnects_are_charged_and_check_shows_zero_difference(tmp_path, fake_openai, redis_server, ledger_url,
                                                                 start_gateway):
    redis_server.command("FLUSHALL")
    crs = write_config(tmp_path / "crs.yaml", fake_openai.base_url)
    gw = start_gateway("-f", str(crs), "--redis-url", redis_server.url, "--ledger-url", ledger_url, wait=False)
    gw.wait_ready(timeout=60)  # a loaded CI machine may take a while
    senders = (chat, lambda c, k, t: chat(c, k, t, stream=True), messages, gemini, embeddings,
               lambda c, k, t: chat(c, k, t, model="m-fallback"))
    with httpx.Client(base_url=gw.url, timeout=30) as client:
        left = [leave_mid_stream(client, KEY_A), leave_mid_stream(client, KEY_B)]
        answered = 0
        for n in range(MIXED):
            r = senders[n % len(senders)](client, KEY_A if n % 3 else KEY_B, f"mixed run {n} " + "x " * (n % 11))
            assert r.status_code == 200, r.text
            answered += 1
    found = wait_rows(ledger_url, MIXED + 2, timeout=60)
    assert len(found) == MIXED + 2
    by_id = {r["request_id"]: r for r in found}
    for request_id in left:
        row = by_id[request_id]
        assert row["status"] == 499 and row["stream"] and row["output_tokens"] == 50 and row["input_tokens"] > 0
        assert row["cost_usd"] == expected_cost(row["model"], row["input_tokens"], row["output_tokens"]) > 0
    deadline = time.monotonic() + 10
    while True:  # a disconnect's settlement runs detached: poll until Redis has it too
        result = ledger_check(redis_server.url, ledger_url, "team-a")
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "difference:   0.000000000 USD" in result.stdout, result.stdout
    assert "redis spend:  0.000000000" not in result.stdout  # the tenant really spent something
