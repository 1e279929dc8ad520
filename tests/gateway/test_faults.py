"""The fault matrix: every upstream failure mode, with and without a healthy fallback target."""

from __future__ import annotations

import asyncio
import random
import socket
import time

import httpx
import pytest

from tests.fakes.openai_provider import Behaviour, FakeOpenAI
from tests.gateway.harness import TENANT_KEY, GatewayProcess, free_port

AUTH = {"authorization": f"Bearer {TENANT_KEY}"}
TIMEOUTS = "  timeouts: {requestSeconds: 3, firstByteSeconds: 0.4}\n"

FAULTS = {
    "500": Behaviour(status=500),
    "502": Behaviour(status=502),
    "503": Behaviour(status=503),
    "429-retry-after": Behaviour(status=429, headers={"retry-after": "0"}),
    "429-bare": Behaviour(status=429),
    "stall-before-first-byte": Behaviour(stall_seconds=3),
    "reset-before-first-byte": Behaviour(disconnect=True),
    "reset-mid-body": Behaviour(disconnect_after_chunks=1),  # a unary body cut half-way / a stream cut at once
    "malformed-json": Behaviour(garbage=True),
}


class Blackhole:
    """A loopback port whose accept queue is full: connecting to it times out (no SYN-ACK)."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(0)
        self.port = self.server.getsockname()[1]
        self.fillers = []
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(s)

    def close(self) -> None:
        for s in [*self.fillers, self.server]:
            s.close()


def crs_text(primary_urls: dict[str, str], backup_url: str | None, tenant_key: str = TENANT_KEY) -> str:
    docs = []
    for name, url in {**primary_urls, **({"backup": backup_url} if backup_url else {})}.items():
        docs.append(f"""apiVersion: aigw.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: {name}}}
spec: {{provider: openai-compatible, baseURL: "{url}"}}
""")
    for name in primary_urls:
        targets = f"    - {{credentialRef: {name}, model: fake, priority: 0}}\n"
        if backup_url:
            targets += "    - {credentialRef: backup, model: fake, priority: 1}\n"
        docs.append(f"""apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {{name: {name}}}
spec:
  model: {name}
  targets:
{targets}  retry: {{attempts: 1, initialBackoffMs: 1, maxBackoffMs: 20}}
  circuitBreaker: {{consecutiveFailures: 1000, openSeconds: 1}}
{TIMEOUTS}""")
    docs.append(f"""apiVersion: aigw.dev/v1alpha1
kind: TenantQuota
metadata: {{name: team}}
spec: {{apiKeySecretRefs: [{{name: team-key}}]}}
---
apiVersion: v1
kind: Secret
metadata: {{name: team-key}}
stringData: {{apiKey: {tenant_key}}}
""")
    return "---\n".join(docs)


async def _one(client: httpx.AsyncClient, url: str, model: str, stream: bool) -> tuple[int, str]:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "fault matrix"}]}
    r = await client.post(url + "/v1/chat/completions", headers=AUTH, json=body)
    return r.status_code, r.text


def test_no_client_visible_errors_with_a_healthy_fallback(tmp_path):
    flaky, backup, refused_port, hole = FakeOpenAI(), FakeOpenAI(), free_port(), Blackhole()
    flaky.start(), backup.start()
    rng = random.Random(42)
    # ~60 % of primary attempts fail, in every mode the matrix names.
    flaky.script(*[rng.choice(list(FAULTS.values())) if rng.random() < 0.6 else Behaviour() for _ in range(4000)])
    crs = tmp_path / "crs.yaml"
    crs.write_text(crs_text({"flaky": flaky.base_url, "refused": f"http://127.0.0.1:{refused_port}/v1",
                             "blackhole": f"http://127.0.0.1:{hole.port}/v1"}, backup.base_url))
    gw = GatewayProcess(["-f", str(crs)], tmp_path / "gw.log")
    try:
        gw.wait_ready()

        async def run() -> list[tuple[int, str]]:
            sem = asyncio.Semaphore(32)
            async with httpx.AsyncClient(timeout=15) as client:
                async def go(i: int):
                    model = "flaky" if i % 10 < 8 else ("refused" if i % 10 == 8 else "blackhole")
                    async with sem:
                        return await _one(client, gw.url, model, stream=i % 2 == 0)
                return await asyncio.gather(*(go(i) for i in range(1000)))

        results = asyncio.run(run())
        bad = [(s, t[:200]) for s, t in results if s != 200 or '"error"' in t]
        streams = [t for (s, t), i in zip(results, range(1000)) if i % 2 == 0]
        assert not bad, f"{len(bad)} client-visible errors, e.g. {bad[:3]}\n{gw.log()[-3000:]}"
        assert all(t.rstrip().endswith("data: [DONE]") for t in streams)
        assert len(flaky.requests) > 500 and len(backup.requests) > 200  # both really served
    finally:
        gw.stop()
        flaky.stop(), backup.stop(), hole.close()


EXPECTED = {
    "500": (502, "upstream_error"), "502": (502, "upstream_error"), "503": (502, "upstream_error"),
    "429-retry-after": (429, "upstream_rate_limited"), "429-bare": (429, "upstream_rate_limited"),
    "stall-before-first-byte": (504, "upstream_timeout"), "reset-before-first-byte": (502, "upstream_error"),
    "reset-mid-body": (502, None), "malformed-json": (502, "upstream_bad_response"),
}


@pytest.fixture(scope="module")
def lone(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lone")
    fake, hole = FakeOpenAI().start(), Blackhole()
    crs = tmp / "crs.yaml"
    crs.write_text(crs_text({"lone": fake.base_url, "refused": f"http://127.0.0.1:{free_port()}/v1",
                             "blackhole": f"http://127.0.0.1:{hole.port}/v1"}, None))
    gw = GatewayProcess(["-f", str(crs)], tmp / "gw.log")
    gw.wait_ready()
    yield gw, fake
    gw.stop()
    fake.stop()
    hole.close()


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_without_fallback_the_error_is_typed_and_timely(lone, fault, stream):
    gw, fake = lone
    fake.set_default(FAULTS[fault])
    try:
        started = time.monotonic()
        r = httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, timeout=15,
                       json={"model": "lone", "stream": stream, "messages": [{"role": "user", "content": "x"}]})
        elapsed = time.monotonic() - started
    finally:
        fake.set_default(None)
    status, code = EXPECTED[fault]
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["request_id"] and err["type"] and (code is None or err["code"] == code), err
    assert elapsed < 2 * (3 + 0.02) + 1  # two tries within requestSeconds each, plus backoff


@pytest.mark.parametrize("model, status, code", [("refused", 502, "upstream_unreachable"),
                                                 ("blackhole", 504, "upstream_timeout")])
def test_connect_failures_without_fallback(lone, model, status, code):
    gw, _ = lone
    started = time.monotonic()
    r = httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, timeout=15,
                   json={"model": model, "messages": [{"role": "user", "content": "x"}]})
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert time.monotonic() - started < 2 * 0.4 + 1.5  # connect timeout = firstByteSeconds, per try
