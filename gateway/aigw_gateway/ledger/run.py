"""`aigw ledger`: the stream writer alone (what the operator deploys as `<gateway>-ledger`)."""

from __future__ import annotations

import asyncio
import logging
import signal

import redis.asyncio as aioredis

from .db import LedgerDB
from .event import stream_key
from .writer import StreamWriter

log = logging.getLogger("aigw.ledger")


async def run_writer(redis_url: str, postgres_url: str, namespace: str, gateway: str, *, consumer: str | None,
                     retention_days: int, claim_idle_ms: int, batch: int) -> None:
    client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2.0, socket_timeout=10.0,
                                     health_check_interval=10)
    db = LedgerDB(postgres_url)
    writer = StreamWriter(client, db, stream_key(namespace, gateway), consumer=consumer, batch=batch,
                          claim_idle_ms=claim_idle_ms, retention_days=retention_days)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, writer.stop.set)
    log.info("ledger writer: stream %s -> PostgreSQL (consumer %s, retention %d days)", writer.stream,
             writer.consumer, retention_days)
    task = asyncio.create_task(writer.run())
    await writer.stop.wait()
    try:
        await asyncio.wait_for(asyncio.shield(task), 5.0)  # lets a batch in hand commit and be acknowledged
    except (TimeoutError, asyncio.CancelledError):
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await db.close()
    await client.aclose()
