"""The limiter's Redis path alone, in one process: CPU µs per request (admit + settle) by client variant.

    .venv/bin/python bench/redis_path.py [--requests N] [--rounds R] [--concurrency C] [--ledger]
                                         [--glide PYTHON]   # a Python with valkey-glide installed

A real redis-server on a free loopback port; C tasks on one uvloop event loop each loop
admit -> (yield to the loop) -> settle, like one busy gateway worker. Each variant runs R times,
interleaved with the others, and the table shows each one's best round (least disturbed by
the other processes of a shared machine): the client process's CPU per request (process_time,
the Redis server's CPU is not in it) and the request rate. `--ledger` adds the usage ledger's
event to every settle (the XADD rides in the settle script).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "gateway"), str(ROOT)]

import uvloop  # noqa: E402
from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser  # noqa: E402

from aigw_config.config import TenantConfig  # noqa: E402
from aigw_config.kinds import Budget, Limits  # noqa: E402
from aigw_gateway.ledger import LedgerEmitter  # noqa: E402
from aigw_gateway.ledger.event import UsageEvent  # noqa: E402
from aigw_gateway.limits import Limiter, RedisStore, limits_client  # noqa: E402
from aigw_gateway.limits.lean_redis import LeanRedis  # noqa: E402
from tests.fakes.redis_server import RedisServer  # noqa: E402

TENANT = TenantConfig(name="bench", limits=Limits(requests_per_minute=10**9, tokens_per_minute=10**12),
                      budget=Budget(amount=10**6))  # fmt: skip


def redis_py(url: str, parser) -> RedisStore:
    client = limits_client(url, lean=False)
    client.connection_pool.connection_kwargs["parser_class"] = parser
    return RedisStore(client)


def event(i: int) -> UsageEvent:
    return UsageEvent(f"req-{i}", None, time.time_ns() // 1000, "default", "bench", "bench", "gpt", "openai/gpt-4o",
                      "openai", "gpt-4o", "chat", 200, False, None, 300, 150, 0, 0, 0, 2_250_000, 12.5, 1)  # fmt: skip


def _done(appended: bool) -> None:
    pass


class Variant:
    def __init__(self, name: str, limiter: Limiter, ledger: LedgerEmitter | None, batched: bool = False) -> None:
        self.name, self.limiter, self.ledger, self.batched = name, limiter, ledger, batched
        self.best: tuple[float, float] | None = None  # (cpu µs/req, req/s)

    async def one(self, i: int) -> None:
        limiter = self.limiter
        admission = await limiter.admit(TENANT, 500)
        limiter.headers(admission)
        await asyncio.sleep(0)  # the upstream call
        append = self.ledger.append_for(event(i), True) if self.ledger is not None else None
        if self.batched:  # what the gateway does: queued, sent in batches, not awaited
            limiter.settle_soon(admission, 300, 150, 0.00225, append, _done)
        else:
            await limiter.settle(admission, 300, 150, 0.00225, append)

    async def round(self, n: int, concurrency: int) -> None:
        per_task = n // concurrency

        async def worker(k: int) -> None:
            for j in range(per_task):
                await self.one(k * per_task + j)

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        await self.limiter.flush()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        done = per_task * concurrency
        result = (cpu / done * 1e6, done / wall)
        if self.best is None or result[0] < self.best[0]:
            self.best = result


async def main(args: argparse.Namespace) -> None:
    server = RedisServer().start()
    ledger = LedgerEmitter(enabled=True) if args.ledger else None
    variants = [
        Variant("redis-py, Python parser", Limiter(redis_py(server.url, _AsyncRESP2Parser)), ledger),
        Variant("redis-py, hiredis parser", Limiter(redis_py(server.url, _AsyncHiredisParser)), ledger),
        Variant("LeanRedis (one pipelined connection)", Limiter(RedisStore(LeanRedis.from_url(server.url))), ledger),
        Variant("redis-py hiredis, settle_soon (batched)", Limiter(redis_py(server.url, _AsyncHiredisParser)),
                ledger, batched=True),
        Variant("LeanRedis, settle_soon (batched)", Limiter(RedisStore(LeanRedis.from_url(server.url))), ledger,
                batched=True),
    ]
    try:
        for v in variants:  # warm up: connections, scripts
            await v.round(2000, args.concurrency)
            v.best = None
        for _ in range(args.rounds):
            for v in variants:
                await v.round(args.requests, args.concurrency)
        rows = []
        for v in variants:
            q = v.limiter.settlements
            name = v.name + (f" [{q.settled_total / q.batches_total:.1f}/trip]" if q.batches_total else "")
            rows.append((name, *v.best))
        if args.glide:  # another Python (valkey-glide needs its own dependencies): same server, after the others
            port = server.url.rsplit(":", 1)[1].split("/")[0]
            out = subprocess.run([args.glide, str(Path(__file__).with_name("redis_glide.py")), "127.0.0.1", port,
                                  str(args.requests), str(args.rounds), str(args.concurrency)],
                                 capture_output=True, text=True, timeout=600)  # fmt: skip
            if out.returncode == 0:
                cpu, rate = out.stdout.split()
                rows.append(("valkey-glide (no ledger event)", float(cpu), float(rate)))
            else:
                print(f"# valkey-glide failed: {out.stderr.strip()[-300:]}")
        base = rows[0][1]
        print(f"{'variant':52s} {'CPU µs/req':>10s} {'× first':>8s} {'req/s':>9s}")
        for name, cpu, rate in rows:
            print(f"{name:52s} {cpu:10.1f} {cpu / base:8.2f} {rate:9,.0f}")
    finally:
        for v in variants:
            await v.limiter.store.aclose()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--ledger", action="store_true")
    parser.add_argument("--glide", metavar="PYTHON", help="also valkey-glide, run by this Python")
    uvloop.run(main(parser.parse_args()))
