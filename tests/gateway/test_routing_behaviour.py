"""Strategies observed through a real gateway: weights hold, the faster target wins, SIGTERM drains."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx

from tests.gateway.harness import TENANT_KEY, write_crs

AUTH = {"authorization": f"Bearer {TENANT_KEY}"}


def _two_targets(tmp_path, a, b, strategy: str, a_extra: str = "", b_extra: str = "") -> str:
    crs = write_crs(tmp_path / "crs.yaml", a.base_url, extra=f"""---
apiVersion: aigw.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: second}}
spec: {{provider: openai-compatible, baseURL: "{b.base_url}", apiKeySecretRef: {{name: upstream-key}}}}
""")
    crs.write_text(crs.read_text().replace(
        "  targets:\n    - credentialRef: upstream\n      model: fake\n",
        f"  strategy: {strategy}\n  targets:\n    - credentialRef: upstream\n      model: fake{a_extra}\n"
        f"    - credentialRef: second\n      model: fake{b_extra}\n"))
    return str(crs)


async def _burst(url: str, n: int, conc: int, stream: bool = False) -> list[httpx.Response]:
    sem = asyncio.Semaphore(conc)
    async with httpx.AsyncClient(timeout=20) as http:
        async def one():
            async with sem:
                return await http.post(url + "/v1/chat/completions", headers=AUTH, json={
                    "model": "gpt-test", "stream": stream, "messages": [{"role": "user", "content": "w"}]})
        return await asyncio.gather(*(one() for _ in range(n)))


def test_weighted_split_within_5_percent(tmp_path, fake_openai_factory, start_gateway):
    a, b = fake_openai_factory(), fake_openai_factory()
    gw = start_gateway("-f", _two_targets(tmp_path, a, b, "weighted", "\n      weight: 3", "\n      weight: 1"))
    results = asyncio.run(_burst(gw.url, 2000, 32))
    assert all(r.status_code == 200 for r in results)
    share_a = len(a.requests) / 2000
    print(f"\nweighted 3:1 over 2000 requests: {share_a:.3f} / {1 - share_a:.3f}")
    # Within 5 % of the larger weight's share (±0.0375, about 3.9 standard deviations at n=2000);
    # the smaller share deviates by the same absolute amount.
    assert abs(share_a - 0.75) <= 0.75 * 0.05
    assert len(a.requests) + len(b.requests) == 2000


def test_least_latency_prefers_the_faster_target(tmp_path, fake_openai_factory, start_gateway):
    slow, fast = fake_openai_factory(), fake_openai_factory()
    gw = start_gateway("-f", _two_targets(tmp_path, slow, fast, "least-latency", "~stall=0.15", ""))
    for _ in range(60):
        assert httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, timeout=10,
                          json={"model": "gpt-test", "messages": [{"role": "user", "content": "w"}]}).status_code == 200
    print(f"\nleast-latency: slow {len(slow.requests)}, fast {len(fast.requests)}")
    assert len(fast.requests) >= 55  # after one measurement each, the fast one takes the traffic


def test_sigterm_during_50_streams_completes_all(tmp_path, fake_openai, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url, upstream_model="fake~chunks=10~chunk_delay_ms=150")
    gw = start_gateway("-f", str(crs), "--graceful-timeout", "20")

    async def run():
        task = asyncio.create_task(_burst(gw.url, 50, 50, stream=True))
        deadline = time.monotonic() + 10
        while len(fake_openai.requests) < 50 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        gw.proc.send_signal(signal.SIGTERM)
        return await task

    results = asyncio.run(run())
    assert len(fake_openai.requests) == 50
    complete = [r for r in results if r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")]
    assert len(complete) == 50
    gw.proc.wait(timeout=10)
