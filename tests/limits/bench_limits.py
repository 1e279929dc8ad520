"""Cost of one admit + settle against a local Redis (and the in-memory store), in µs.

    python -m tests.limits.bench_limits [N] [--uvloop]

Not a test: a measurement for the issue notes. Sequential (one request at a time) and at
concurrency 32 (32 tasks on one event loop, as one busy gateway worker).
"""

from __future__ import annotations

import asyncio
import sys
import time

from aigw_config.config import TenantConfig
from aigw_config.kinds import Budget, Limits
from aigw_gateway.limits import Limiter, MemoryStore, RedisStore
from tests.fakes.redis_server import RedisServer

TENANT = TenantConfig(
    name="bench", limits=Limits(requests_per_minute=10**9, tokens_per_minute=10**12), budget=Budget(amount=10**6)
)


async def one(limiter: Limiter, tenant: TenantConfig) -> None:
    admission = await limiter.admit(tenant, 500)
    limiter.headers(admission)
    await limiter.settle(admission, 300, 150, 0.001)


async def measure(limiter: Limiter, tenant: TenantConfig, n: int, concurrency: int) -> float:
    for _ in range(200):  # warm up: connections, scripts
        await one(limiter, tenant)
    per_task = n // concurrency

    async def worker() -> None:
        for _ in range(per_task):
            await one(limiter, tenant)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.perf_counter() - start) / (per_task * concurrency) * 1e6


async def main(n: int) -> None:
    server = RedisServer().start()
    store = RedisStore.from_url(server.url)
    try:
        rows = []
        for name, limiter, tenant in [
            ("redis", Limiter(store, fail_mode="closed"), TENANT),
            ("memory", Limiter(MemoryStore(), fail_mode="closed"), TENANT),
            ("no limits", Limiter(store, fail_mode="closed"), TenantConfig(name="free")),
        ]:
            for concurrency in (1, 32):
                us = await measure(limiter, tenant, n, concurrency)
                rows.append(f"{name:10s} concurrency {concurrency:2d}: {us:8.1f} µs per admit+settle "
                            f"({1e6 / us:,.0f} pairs/s)")  # fmt: skip
        print("\n".join(rows))
    finally:
        await store.aclose()
        server.stop()


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    run = asyncio.run
    if "--uvloop" in sys.argv:  # what `aigw serve` runs on
        import uvloop

        run = uvloop.run
    run(main(int(args[0]) if args else 20_000))
