"""Failover that holds under a stalled primary, and the breaker's rules (through a real gateway).

A primary that stalls 30 s before its first byte (firstByteSeconds: 1, retry.attempts: 2, breaker
5 failures / 5 s) and a healthy secondary: every one of 200 mixed stream/non-stream requests is
answered within an 8 s client timeout. A client error never counts as a target failure; when every
target's circuit is open, the one that opened first is still tried (panic routing), not a 503.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.fakes.openai_provider import Behaviour
from tests.gateway.harness import TENANT_KEY, write_crs
from tests.gateway.test_resilience import two_target_crs

AUTH = {"authorization": f"Bearer {TENANT_KEY}"}
STALLED_ROUTE = """  retry: {attempts: 2, initialBackoffMs: 100, maxBackoffMs: 2000}
  timeouts: {firstByteSeconds: 1, requestSeconds: 60}
  circuitBreaker: {consecutiveFailures: 5, openSeconds: 5}
"""


async def _one(client: httpx.AsyncClient, url: str, i: int) -> tuple[int, str, float]:
    stream = i % 2 == 0
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": f"hello {i}"}], "stream": stream}
    started = time.monotonic()
    try:
        if stream:
            async with client.stream("POST", url + "/v1/chat/completions", headers=AUTH, json=body) as r:
                text = (await r.aread()).decode()
                ok = r.status_code == 200 and "[DONE]" in text and '"error"' not in text
                return (r.status_code if ok else -r.status_code), r.headers.get("x-aigw-target", ""), time.monotonic() - started
        r = await client.post(url + "/v1/chat/completions", headers=AUTH, json=body)
        return r.status_code, r.headers.get("x-aigw-target", ""), time.monotonic() - started
    except httpx.HTTPError as exc:
        return 0, type(exc).__name__, time.monotonic() - started


def test_stalled_primary_fails_over_for_every_request(tmp_path, fake_openai_factory, start_gateway):
    primary, backup = fake_openai_factory(), fake_openai_factory()
    primary.set_default(Behaviour(stall_seconds=30))
    gw = start_gateway("-f", two_target_crs(tmp_path, primary, backup, STALLED_ROUTE))

    async def run() -> list[tuple[int, str, float]]:
        limits = httpx.Limits(max_connections=40, max_keepalive_connections=40)
        async with httpx.AsyncClient(timeout=8.0, limits=limits) as client:
            sem = asyncio.Semaphore(20)

            async def paced(i: int):
                async with sem:
                    return await _one(client, gw.url, i)
            return await asyncio.gather(*(paced(i) for i in range(200)))

    results = asyncio.run(run())
    failed = [(i, r) for i, r in enumerate(results) if r[0] != 200]
    assert not failed, f"{len(failed)}/200 failed: {failed[:10]}\n{gw.log()[-3000:]}"
    assert all(target == "backup/fake" for _, target, _ in results)
