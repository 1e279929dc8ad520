"""Upstream answers are bounded: a 400 MiB body, a gzip bomb (1 MiB -> 1 GiB) and an SSE line
without a newline get a clear 502 (or an error event once a stream started); the gateway's RSS
stays bounded and another tenant's requests are answered meanwhile."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.hostile_upstream import HostileUpstream, gzip_bomb
from tests.gateway.harness import TENANT_KEY, write_crs

AUTH = {"authorization": f"Bearer {TENANT_KEY}"}
RSS_BUDGET_MB = 120  # above the idle gateway; the 32 MiB cap plus buffers, far below 400 MiB or 1 GiB


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileUpstream]:
    gzip_bomb()  # built before any timing starts
    upstream = HostileUpstream().start()
    yield upstream
    upstream.stop()


def routes(hostile: HostileUpstream) -> str:
    out = f"""---
apiVersion: aigw.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: hostile}}
spec:
  provider: openai-compatible
  baseURL: {hostile.base_url}
"""
    for model in ("huge", "bomb", "endless-line", "late-endless"):
        out += f"""---
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {{name: {model}}}
spec:
  model: {model}
  retry: {{attempts: 0}}
  targets: [{{credentialRef: hostile, model: {model}}}]
"""
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture
def gateway(tmp_path, fake_openai, hostile, start_gateway):
    return start_gateway("-f", str(write_crs(tmp_path / "crs.yaml", fake_openai.base_url, extra=routes(hostile))))


def hostile_call(gw, model: str, stream: bool) -> tuple[httpx.Response, float, list[float]]:
    """The hostile request, while another tenant's requests run beside it: (answer, peak RSS MB,
    latencies of the other requests)."""
    peak = 0.0
    latencies: list[float] = []
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb(gw.proc.pid))
            time.sleep(0.02)

    def other_tenant() -> None:
        with httpx.Client(timeout=10) as client:
            while not done.is_set():
                started = time.monotonic()
                r = client.post(gw.url + "/v1/chat/completions", headers=AUTH,
                                json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]})
                assert r.status_code == 200
                latencies.append(time.monotonic() - started)
    threads = [threading.Thread(target=watch), threading.Thread(target=other_tenant)]
    for t in threads:
        t.start()
    try:
        r = httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, timeout=60,
                       json={"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream})
    finally:
        done.set()
        for t in threads:
            t.join(timeout=15)
    print(f"\n{model}: HTTP {r.status_code}, gateway peak RSS {peak:.0f} MB, other tenant: {len(latencies)} requests, "
          f"slowest {max(latencies, default=0) * 1000:.0f} ms")
    return r, peak, latencies


@pytest.mark.parametrize("model", ["huge", "bomb"])
def test_an_oversized_answer_is_a_502_with_flat_memory(gateway, hostile, model):
    idle = rss_mb(gateway.proc.pid)
    r, peak, latencies = hostile_call(gateway, model, stream=False)
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    assert error["code"] == "upstream_response_too_large" and "33554432 bytes" in error["message"]
    assert peak - idle < RSS_BUDGET_MB, f"RSS {idle:.0f} -> {peak:.0f} MB"
    assert latencies and max(latencies) < 3.0, latencies  # the event loop kept serving
    if model == "huge":
        assert hostile.sent["huge"] < 200 << 20  # the gateway stopped reading


def test_an_sse_line_without_newline_is_refused(gateway, hostile):
    idle = rss_mb(gateway.proc.pid)
    r, peak, latencies = hostile_call(gateway, "endless-line", stream=True)
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_response_too_large"
    assert "line longer than" in r.json()["error"]["message"]
    assert peak - idle < RSS_BUDGET_MB, f"RSS {idle:.0f} -> {peak:.0f} MB"
    assert latencies and max(latencies) < 3.0, latencies


def test_a_stream_that_started_ends_with_an_error_event(gateway, hostile):
    idle = rss_mb(gateway.proc.pid)
    r, peak, latencies = hostile_call(gateway, "late-endless", stream=True)
    assert r.status_code == 200
    assert "hello" in r.text and "upstream_response_too_large" in r.text and "line longer than" in r.text
    assert peak - idle < RSS_BUDGET_MB, f"RSS {idle:.0f} -> {peak:.0f} MB"
    assert latencies and max(latencies) < 3.0, latencies
