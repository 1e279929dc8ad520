"""The ledger writer: the gateway's usage stream into PostgreSQL, each request exactly once.

A consumer group reads the stream; a batch is inserted idempotently (ON CONFLICT DO NOTHING)
and committed, and only then acknowledged and deleted from the stream: at-least-once
delivery plus idempotent rows is exactly-once rows. The stream's length is therefore the
backlog. While PostgreSQL is down the batch is retried with backoff and the stream buffers
(bounded by the gateways' MAXLEN, the only place events can be lost). At start the writer
first re-reads its own pending entries (it was killed mid-batch), and periodically claims
entries another consumer left pending for longer than `claim_idle` (XAUTOCLAIM).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..redis_errors import RedisError, ResponseError
from .event import GROUP, BadEntry, UsageEvent, event_from_fields
from .health import HEARTBEAT_INTERVAL, HEARTBEAT_TTL_PERIODS, PostgresHealth, heartbeat_fields, heartbeat_key

if TYPE_CHECKING:
    import redis.asyncio as aioredis  # a serving gateway imports redis-py only when it uses it

    from .db import LedgerDB  # psycopg: imported only when a ledger URL is set

log = logging.getLogger("aigw.ledger")

Entry = tuple[bytes, dict[bytes, bytes]]


def default_consumer() -> str:
    return os.environ.get("POD_NAME") or socket.gethostname()


class Backoff:
    def __init__(self, first: float = 0.2, cap: float = 5.0) -> None:
        self.first, self.cap, self.delay = first, cap, first

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        self.delay = self.first


class WriterStats:
    def __init__(self) -> None:
        self.rows_written = 0
        self.duplicates = 0
        self.bad_entries = 0
        self.insert_failures = 0
        self.claimed = 0
        self.last_commit = 0.0
        self.postgres = PostgresHealth()

    @property
    def postgres_ok(self) -> bool:
        return self.postgres.state == "ok"


async def insert_until_committed(db: LedgerDB, events: Sequence[UsageEvent], stats: WriterStats,
                                 stop: asyncio.Event | None = None) -> bool:
    """Insert with retries (backoff) until committed; False only when stopped first."""
    from .db import DB_ERRORS  # loaded by then: `db` is a LedgerDB
    backoff = Backoff()
    while True:
        try:
            written = await db.insert(events)
        except DB_ERRORS as exc:
            stats.insert_failures += 1
            stats.postgres.failed(exc)
            delay = backoff.next()
            log.warning("ledger: PostgreSQL insert of %d rows failed (%s: %s); retrying in %.1fs",
                        len(events), type(exc).__name__, str(exc).strip().splitlines()[0][:200] if str(exc) else "",
                        delay)
            if stop is not None:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    return False
                except TimeoutError:
                    continue
            await asyncio.sleep(delay)
            continue
        stats.postgres.succeeded()
        stats.rows_written += written
        stats.duplicates += len(events) - written
        stats.last_commit = time.time()
        return True


class StreamWriter:
    def __init__(self, client: aioredis.Redis | Callable[[], aioredis.Redis | None], db: LedgerDB, stream: str, *, consumer: str | None = None,
                 batch: int = 500, block_ms: int = 1000, claim_idle_ms: int = 60_000,
                 retention_days: int = 400, retention_interval: float = 3600.0,
                 heartbeat_interval: float = HEARTBEAT_INTERVAL) -> None:
        self._client = client
        self.db = db
        self.stream = stream
        self.consumer = consumer or default_consumer()
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.retention_days = retention_days
        self.retention_interval = retention_interval
        self.heartbeat_interval = heartbeat_interval
        self.stats = WriterStats()
        self.stop = asyncio.Event()

    @property
    def client(self) -> aioredis.Redis:
        """The current client (a getter's may be replaced when the configured URL changes)."""
        source = self._client
        client = source() if callable(source) else source  # a client, or a getter of one
        if client is None:
            raise RedisError("no Redis client")
        return client

    async def _ensure_group(self) -> None:
        try:
            await self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        """Until `stop` is set (or cancelled)."""
        tasks = [asyncio.create_task(self._consume(), name="ledger-consume"),
                 asyncio.create_task(self._heartbeat(), name="ledger-heartbeat")]
        if self.retention_days > 0:
            tasks.append(asyncio.create_task(self._retention(), name="ledger-retention"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _consume(self) -> None:
        backoff = Backoff()
        own_pending = True  # first the entries this consumer read before it was killed
        next_claim = 0.0
        group_ready = False
        while not self.stop.is_set():
            try:
                if not group_ready:
                    await self._ensure_group()
                    group_ready = True
                if time.monotonic() >= next_claim:
                    next_claim = time.monotonic() + max(self.claim_idle_ms / 2000, 0.5)
                    await self._claim()
                reply = await self.client.xreadgroup(
                    GROUP, self.consumer, {self.stream: "0" if own_pending else ">"},
                    count=self.batch, block=None if own_pending else self.block_ms,
                )  # fmt: skip
                entries: list[Entry] = reply[0][1] if reply else []
                if own_pending and not entries:
                    own_pending = False
                    continue
                backoff.reset()
            except (RedisError, OSError) as exc:
                if "NOGROUP" in str(exc):
                    group_ready = False
                delay = backoff.next()
                log.warning("ledger: reading the stream %s failed (%s); retrying in %.1fs", self.stream,
                            type(exc).__name__, delay)
                await asyncio.sleep(delay)
                continue
            if entries:
                await self._commit(entries)

    async def _claim(self) -> None:
        start = "0-0"
        while True:
            reply = await self.client.xautoclaim(self.stream, GROUP, self.consumer, self.claim_idle_ms,
                                                 start_id=start, count=self.batch)
            start, entries = reply[0], reply[1]
            entries = [e for e in entries if e and e[1] is not None]
            if entries:
                self.stats.claimed += len(entries)
                log.info("ledger: claimed %d entries another writer left pending", len(entries))
                await self._commit(entries)
            if start in (b"0-0", "0-0") or not entries:
                return

    async def _commit(self, entries: list[Entry]) -> None:
        events: dict[str, UsageEvent] = {}
        for entry_id, fields in entries:
            try:
                event = event_from_fields(fields)
            except BadEntry as exc:
                self.stats.bad_entries += 1
                log.error("ledger: stream entry %s is not a usage event (%s); dropped", entry_id, exc)
                continue
            events[event.request_id] = event  # one row per request even within a batch
        if events and not await insert_until_committed(self.db, list(events.values()), self.stats, self.stop):
            return
        ids = [entry_id for entry_id, _ in entries]
        backoff = Backoff()
        while True:  # committed: acknowledge; if this fails for good, redelivery inserts nothing twice
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    pipe.xack(self.stream, GROUP, *ids)
                    pipe.xdel(self.stream, *ids)
                    await pipe.execute()
                return
            except (RedisError, OSError) as exc:
                if self.stop.is_set():
                    return
                delay = backoff.next()
                log.warning("ledger: acknowledging %d entries failed (%s); retrying in %.1fs", len(ids),
                            type(exc).__name__, delay)
                await asyncio.sleep(delay)

    async def _retention(self) -> None:
        from .db import DB_ERRORS  # loaded by then: `self.db` is a LedgerDB
        while not self.stop.is_set():
            try:
                deleted = await self.db.delete_older_than(self.retention_days)
                if deleted:
                    log.info("ledger: retention deleted %d rows older than %d days", deleted, self.retention_days)
            except DB_ERRORS as exc:
                log.warning("ledger: retention delete failed (%s); next try in %.0fs", type(exc).__name__,
                            self.retention_interval)
            try:
                await asyncio.wait_for(self.stop.wait(), self.retention_interval)
            except TimeoutError:
                pass

    async def _heartbeat(self) -> None:
        """Publish the writer's health every interval (see health.py); probe PostgreSQL when
        nothing else touched it for an interval (an idle writer notices an outage too)."""
        from .db import DB_ERRORS  # loaded by then: `self.db` is a LedgerDB
        key = heartbeat_key(self.stream)
        ttl = max(int(self.heartbeat_interval * HEARTBEAT_TTL_PERIODS), 1)
        while not self.stop.is_set():
            health = self.stats.postgres
            if health.due_for_probe(self.heartbeat_interval) and not self.db.busy:
                try:
                    await self.db.ping()
                    health.succeeded()
                except DB_ERRORS as exc:
                    if health.state != "failing":
                        log.warning("ledger: PostgreSQL probe failed (%s)", type(exc).__name__)
                    health.failed(exc)
            fields = heartbeat_fields(self.consumer, health, self.stats.last_commit, self.stats.rows_written)
            try:
                async with self.client.pipeline(transaction=True) as pipe:
                    pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
                    pipe.expire(key, ttl)
                    await pipe.execute()
            except (RedisError, OSError) as exc:  # the consumer logs Redis trouble already
                log.debug("ledger: heartbeat not published (%s)", type(exc).__name__)
            try:
                await asyncio.wait_for(self.stop.wait(), self.heartbeat_interval)
            except TimeoutError:
                pass
