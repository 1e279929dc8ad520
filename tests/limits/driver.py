"""Load driver for the limits concurrency tests: one "gateway process" with N concurrent clients.

Run in-process (`await run_clients(...)`) or as a separate OS process:

    python -m tests.limits.driver '<json spec>'     # prints "ready", waits for "go" on stdin,
                                                   # then prints one JSON line of events

Every client loops: estimate -> admit -> (simulated upstream call) -> settle with a random
real usage around the estimate (awaited, or with `"batched": true` queued like the gateway does), until it has been refused `max_refusals` times in a window.
The clock is a constant per phase, so each phase is one rate-limit window whatever the
wall clock does; the events say which window they belong to.
"""

from __future__ import annotations

import asyncio
import random
import sys
from typing import Any

import orjson

from aigw_config.config import TenantConfig
from aigw_config.kinds import Limits
from aigw_gateway.errors import GatewayError, RateLimitExceeded
from aigw_gateway.limits import Limiter, MemoryStore, RedisStore, Store


async def _client(
    limiter: Limiter, tenant: TenantConfig, spec: dict[str, Any], rng: random.Random, events: list
) -> None:
    lo, hi = spec["estimate"]
    u_lo, u_hi = spec["usage"]
    refusals = attempts = 0
    while refusals < spec["max_refusals"] and attempts < spec["max_attempts"]:
        attempts += 1
        estimate = rng.randint(lo, hi)
        try:
            admission = await limiter.admit(tenant, estimate)
        except RateLimitExceeded as exc:
            refusals += 1
            events.append({"refused": exc.type, "estimate": estimate, "headers": exc.headers})
            await asyncio.sleep(rng.uniform(0, 0.002))
            continue
        except GatewayError as exc:
            events.append({"error": f"{type(exc).__name__}: {exc.message}"})
            return
        if admission.degraded:
            events.append({"error": "degraded admission"})
            return
        await asyncio.sleep(rng.uniform(0, 0.004))  # the upstream call; others admit meanwhile
        actual = max(1, round(estimate * rng.uniform(u_lo, u_hi)))
        prompt = actual // 2
        if spec.get("batched"):  # the gateway's way: queued, sent in batches, never awaited
            limiter.settle_soon(admission, prompt, actual - prompt, 0.0)
        else:
            await limiter.settle(admission, prompt, actual - prompt, 0.0)
        events.append({
            "admitted": estimate, "actual": actual, "window": admission.window_start,
            "requests_used": admission.requests_used, "tokens_used": admission.tokens_used,
        })  # fmt: skip


async def run_clients(store: Store, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Run `spec["clients"]` concurrent clients through each phase (one clock time per phase)."""
    limits = Limits(requests_per_minute=spec.get("rpm"), tokens_per_minute=spec.get("tpm"))
    tenant = TenantConfig(name=spec["tenant"], limits=limits)
    events: list[dict[str, Any]] = []
    for phase, now in enumerate(spec["phases"]):
        limiter = Limiter(store, fail_mode="closed", clock=lambda now=now: now)
        rngs = [random.Random(f"{spec['seed']}-{phase}-{i}") for i in range(spec["clients"])]
        await asyncio.gather(*(_client(limiter, tenant, spec, rng, events) for rng in rngs))
        await limiter.flush()
    return events


async def _main(spec: dict[str, Any]) -> None:
    store = RedisStore.from_url(spec["url"]) if spec.get("url") else MemoryStore()
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if line.strip() != "go":
        raise SystemExit(f"expected 'go', got {line!r}")
    events = await run_clients(store, spec)
    if isinstance(store, RedisStore):
        await store.aclose()
    sys.stdout.write(orjson.dumps(events).decode() + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(_main(orjson.loads(sys.argv[1])))
