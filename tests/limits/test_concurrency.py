"""Exactness under concurrency: 20 clients in 2 OS processes against one tenant in one Redis.

Per window, the tokens actually used by admitted requests stay within the limit (x 1.01: a
request's real usage may exceed its estimate after it was admitted), the store's counters
equal the clients' own ledger (no lost update), and every refusal happened when the window
really had no room for that request (no early 429). The same holds for requests per minute,
exactly. The in-memory store runs the same load in one process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from aigw_config.config import TenantConfig
from aigw_config.kinds import Limits
from aigw_gateway.limits import Limiter, MemoryStore, RedisStore
from tests.fakes.redis_server import RedisServer

from .driver import run_clients

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000  # a minute boundary
PHASES = [T0 + 30, T0 + 90]  # two windows, one after the other
TPM = 80_000
ESTIMATE = (100, 400)
USAGE = (0.85, 1.1)  # real usage from 15 % below the estimate to 10 % above it
RPM = 300


def spawn_drivers(spec: dict, processes: int) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "gateway"), str(ROOT)])}
    procs = []
    try:
        for i in range(processes):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "tests.limits.driver", orjson.dumps({**spec, "seed": f"{spec['seed']}-p{i}"})],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env, text=True,
            ))  # fmt: skip
        for proc in procs:  # all connected and waiting: then release them together
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        events = []
        for proc in procs:
            out, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, err
            events.extend(orjson.loads(out.strip().splitlines()[-1]))
        return events
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


def check_tokens(events: list[dict], tpm: int) -> dict[int, int]:
    assert not [e for e in events if "error" in e], [e for e in events if "error" in e][:3]
    used: dict[int, int] = defaultdict(int)
    for e in events:
        if "admitted" in e:
            used[e["window"]] += e["actual"]
            # Exact at admission: reserved + settled, this reservation included, within the limit.
            assert e["tokens_used"] <= tpm, e
    refusals = [e for e in events if "refused" in e]
    assert refusals, "the load never reached the limit: the test proves nothing"
    for e in refusals:
        assert e["refused"] == "tokens"
        # Refused only when reserved + settled + this estimate > limit: remaining < estimate.
        assert int(e["headers"]["x-ratelimit-remaining-tokens"]) < e["estimate"], e
    assert set(used) == {T0, T0 + 60}
    for window, tokens in used.items():
        assert tokens <= tpm * 1.01, (window, tokens)
        assert tokens >= tpm * 0.9, (window, tokens)  # the window was really filled
    return used


def check_requests(events: list[dict], rpm: int) -> None:
    assert not [e for e in events if "error" in e], [e for e in events if "error" in e][:3]
    admitted: dict[int, int] = defaultdict(int)
    for e in events:
        if "admitted" in e:
            admitted[e["window"]] += 1
            assert e["requests_used"] <= rpm, e
    assert dict(admitted) == {T0: rpm, T0 + 60: rpm}  # exactly the limit, in each window
    refusals = [e for e in events if "refused" in e]
    assert refusals and all(e["headers"]["x-ratelimit-remaining-requests"] == "0" for e in refusals)


async def store_counters(store, name: str, limits: Limits) -> dict[int, tuple[int, int]]:
    seen = {}
    for now in PHASES:
        usage = await Limiter(store, fail_mode="closed", clock=lambda now=now: now).usage(
            TenantConfig(name=name, limits=limits)
        )
        seen[now // 60 * 60] = (usage["requests"]["used"], usage["tokens"]["used"])
    return seen


def ledger(events: list[dict]) -> dict[int, tuple[int, int]]:
    out: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for e in events:
        if "admitted" in e:
            out[e["window"]][0] += 1
            out[e["window"]][1] += e["actual"]
    return {w: (r, t) for w, (r, t) in out.items()}


def spec_for(tenant: str, **limits) -> dict:
    return {"tenant": tenant, "phases": PHASES, "estimate": ESTIMATE, "usage": USAGE, "seed": tenant,
            "max_refusals": 5, "max_attempts": 5000, **limits}  # fmt: skip


async def test_tokens_per_minute_hold_across_two_processes(redis_server: RedisServer, tenant_name: str):
    spec = {**spec_for(tenant_name, tpm=TPM), "url": redis_server.url, "clients": 10}
    events = spawn_drivers(spec, processes=2)
    check_tokens(events, TPM)
    store = RedisStore.from_url(redis_server.url)
    try:
        assert await store_counters(store, tenant_name, Limits(tokens_per_minute=TPM)) == ledger(events)
    finally:
        await store.aclose()


async def test_requests_per_minute_hold_across_two_processes(redis_server: RedisServer, tenant_name: str):
    spec = {**spec_for(tenant_name, rpm=RPM), "url": redis_server.url, "clients": 10}
    events = spawn_drivers(spec, processes=2)
    check_requests(events, RPM)
    store = RedisStore.from_url(redis_server.url)
    try:
        assert await store_counters(store, tenant_name, Limits(requests_per_minute=RPM)) == ledger(events)
    finally:
        await store.aclose()


@pytest.mark.parametrize("kind", ["tokens", "requests"])
async def test_memory_store_holds_the_same_under_concurrency(kind: str, tenant_name: str):
    store = MemoryStore()
    limits = {"tpm": TPM} if kind == "tokens" else {"rpm": RPM}
    events = await run_clients(store, {**spec_for(tenant_name, **limits), "clients": 20})
    if kind == "tokens":
        check_tokens(events, TPM)
    else:
        check_requests(events, RPM)
    lim = Limits(tokens_per_minute=limits.get("tpm"), requests_per_minute=limits.get("rpm"))
    assert await store_counters(store, tenant_name, lim) == ledger(events)
