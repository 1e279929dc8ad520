"""The ledger inside a gateway process: the event queue's drain, the stream writer (unless
another process runs it), and the stream-length metric. Started by the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from prometheus_client import Gauge

from aigw_config.report import LedgerReport, LedgerWriterReport

from .event import stream_key
from .health import HEARTBEAT_INTERVAL, heartbeat_key, writer_report
from .writer import StreamWriter

if TYPE_CHECKING:
    from ..state import GatewayState
    from .db import LedgerDB

log = logging.getLogger("aigw.ledger")

STREAM_LENGTH = Gauge("aigw_ledger_stream_length", "Usage events waiting in the ledger stream (the writer's backlog).",
                      multiprocess_mode="max")
STREAM_MAXLEN = Gauge("aigw_ledger_stream_max_length", "The ledger stream's bound (MAXLEN ~): events past it are lost.",
                      multiprocess_mode="max")
QUEUE_DROPPED = Gauge("aigw_ledger_events_dropped", "Usage events dropped because the in-process queue was full.",
                      multiprocess_mode="sum")


def _identity(state: GatewayState) -> tuple[str, str]:
    runtime = state.holder.current
    gateway = runtime.config.gateway if runtime is not None else None
    return (gateway.namespace, gateway.name) if gateway else ("default", "local")


def _try_lock(path: str):
    """An exclusive lock on `path`, held while the returned file stays open (None: another worker
    has it). The OS releases it when its process dies, so another worker takes over."""
    handle = open(path, "a+b")  # noqa: SIM115 - kept open on purpose: it is the lock
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


async def _stream_writer(state: GatewayState, url: str) -> None:
    """Consume the stream once the Redis URL and the gateway's identity are known. Under
    `--workers N` the workers share a lock file: one of them is the writer."""
    lock = None
    if state.settings.ledger_lock_path:
        while (lock := _try_lock(state.settings.ledger_lock_path)) is None:
            await asyncio.sleep(5.0)
    while state.limits_url is None or state.redis.client is None or state.holder.current is None:
        await asyncio.sleep(0.2)
    settings = state.settings
    from .db import LedgerDB  # psycopg: only with a ledger URL
    # The shared client's socket timeout is 1 s: a blocking read must return well before it.
    writer = StreamWriter(lambda: state.redis.client, LedgerDB(url), stream_key(*_identity(state)),
                          retention_days=settings.ledger_retention_days, block_ms=250)
    log.info("ledger: writer for stream %s (consumer %s)", writer.stream, writer.consumer)
    try:
        await writer.run()
    finally:
        await writer.db.close()
        if lock is not None:
            lock.close()


async def ledger_report(state: GatewayState) -> LedgerReport | None:
    """The ledger part of this pod's report (None: no ledger). With Redis: the stream's length
    and the writer's heartbeat, in one round trip; without: this pod's own queue and inserts."""
    if not state.settings.ledger_url:
        return None
    emitter = state.ledger
    client = state.redis.client if state.limits_url is not None else None
    if client is None:
        if state.limits_url is not None:  # Redis configured, not connected yet
            return LedgerReport(max_length=emitter.maxlen, error="Redis not connected")
        health = emitter.stats.postgres
        now = time.time()
        return LedgerReport(backlog=emitter.queued, shared=False, writer=LedgerWriterReport(
            consumer=state.settings.pod_name, postgres=health.state, error=health.error,
            failing_seconds=None if health.failing_since is None else round(now - health.failing_since, 1),
            rows_written=emitter.stats.rows_written))
    stream = stream_key(*_identity(state))
    try:
        async with asyncio.timeout(1.0):
            async with client.pipeline(transaction=False) as pipe:
                pipe.xlen(stream)
                pipe.hgetall(heartbeat_key(stream))
                length, heartbeat = await pipe.execute()
    except Exception as exc:  # Redis away: the report says so, the operator keeps the verdict Unknown
        return LedgerReport(max_length=emitter.maxlen, error=f"reading the stream failed ({type(exc).__name__})")
    STREAM_LENGTH.set(length)
    return LedgerReport(backlog=int(length), max_length=emitter.maxlen,
                        writer=writer_report(heartbeat or {}, time.time()))


async def _probe_direct(state: GatewayState, db: LedgerDB) -> None:
    """Without Redis this pod writes PostgreSQL itself: probe it while no insert did for a while,
    so the report (LedgerReady) sees an outage on an idle gateway too."""
    health = state.ledger.stats.postgres
    if state.limits_url is not None or db.busy or not health.due_for_probe(HEARTBEAT_INTERVAL):
        return
    from .db import DB_ERRORS  # psycopg's: loaded with the ledger URL already

    try:
        await db.ping()
        health.succeeded()
    except DB_ERRORS as exc:
        health.failed(exc)


async def _metrics(state: GatewayState, direct_db: LedgerDB | None = None) -> None:
    STREAM_MAXLEN.set(state.ledger.maxlen)
    while True:
        QUEUE_DROPPED.set(state.ledger.dropped_total)
        if direct_db is not None:
            await _probe_direct(state, direct_db)
        client = state.redis.client
        if client is not None and state.holder.current is not None:
            try:
                async with asyncio.timeout(1.0):
                    STREAM_LENGTH.set(await client.xlen(stream_key(*_identity(state))))
            except Exception:  # a metric is not worth a log line per scrape period
                pass
        await asyncio.sleep(5.0)


@contextlib.asynccontextmanager
async def gateway_ledger(state: GatewayState) -> AsyncIterator[None]:
    url = state.settings.ledger_url
    if not url:
        yield
        return
    from .db import LedgerDB  # psycopg: only with a ledger URL

    direct_db = LedgerDB(url)  # used only while there is no Redis: the queue feeds PostgreSQL directly
    state.ledger_reads = LedgerDB(url)
    redis_client = lambda: state.redis.client if state.limits_url is not None else None  # noqa: E731
    tasks = [asyncio.create_task(state.ledger.run(redis_client, direct_db), name="ledger-queue"),
             asyncio.create_task(_metrics(state, direct_db), name="ledger-metrics")]
    if state.settings.ledger_writer:
        tasks.append(asyncio.create_task(_stream_writer(state, url), name="ledger-writer"))
    try:
        yield
    finally:
        await state.ledger.drain(timeout=2.0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for db in (direct_db, state.ledger_reads):
            await db.close()
