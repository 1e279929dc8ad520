"""The writer against real Redis and PostgreSQL: idempotent rows, acknowledgement after commit,
migrations applied once, retention, bad entries."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

import psycopg
import redis.asyncio as aioredis

from aigw_gateway.ledger import LedgerDB, StreamWriter, UsageEvent
from aigw_gateway.ledger.event import GROUP
from aigw_gateway.ledger.schema import LATEST, migrate
from tests.ledger.conftest import rows


def event(n: int, cost_nano: int = 1_234_567_891) -> UsageEvent:
    return UsageEvent(f"req_{uuid.uuid4().hex}", None, time.time_ns() // 1000, "ns", "gw", "t", "r", "c/m", "openai",
                      "m", "chat", 200, False, None, n, n + 1, 0, 0, 0, cost_nano, 1.5, 1)


async def _until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_redelivered_entries_are_one_row_each_and_the_stream_empties(redis_server, ledger_url):
    client = aioredis.Redis.from_url(redis_server.url)
    stream = f"aigw:ledger:test:{uuid.uuid4().hex[:8]}"
    events = [event(i) for i in range(20)]
    for e in events:
        await client.xadd(stream, dict(zip(e.fields()[::2], e.fields()[1::2])))
    await client.xadd(stream, {"not": "an event"})
    db = LedgerDB(ledger_url)
    assert await db.insert(events[:7]) == 7  # as if a writer committed these, then died before XACK
    writer = StreamWriter(client, db, stream, consumer="c1", batch=6, claim_idle_ms=1000)
    task = asyncio.create_task(writer.run())

    async def drained() -> bool:
        return await client.xlen(stream) == 0

    await _until(drained)
    writer.stop.set()
    await asyncio.wait_for(task, 10)
    found = rows(ledger_url)
    assert sorted(r["request_id"] for r in found) == sorted(e.request_id for e in events)
    assert all(r["cost_usd"] == Decimal("1.234567891") for r in found)
    assert writer.stats.duplicates == 7 and writer.stats.bad_entries == 1
    assert (await client.xpending(stream, GROUP))["pending"] == 0
    await db.close()
    await client.aclose()


async def test_migrations_are_versioned_and_idempotent(ledger_url):
    async with await psycopg.AsyncConnection.connect(ledger_url, autocommit=True) as conn:
        assert await migrate(conn) == LATEST
        assert await migrate(conn) == LATEST
        cur = await conn.execute("SELECT version FROM aigw_schema_version ORDER BY version")
        assert [v for (v,) in await cur.fetchall()] == list(range(1, LATEST + 1))
        cur = await conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'aigw_usage'")
        assert any("(namespace, gateway, tenant, ts)" in d for (d,) in await cur.fetchall())


async def test_retention_deletes_only_old_rows(ledger_url):
    db = LedgerDB(ledger_url)
    old, new = event(1), event(2)
    old.ts_us -= 401 * 86400 * 1_000_000
    await db.insert([old, new])
    assert await db.delete_older_than(400) == 1
    assert [r["request_id"] for r in rows(ledger_url)] == [new.request_id]
    await db.close()
