"""The gateway's side of the ledger: usage events out of the request path.

Most events ride in the settle script (`append_for`, no extra round trip). The others (a
tenant without limits has no reservation to settle; a settlement that failed; no Redis at
all) go to a bounded in-process queue, drained by one background task: with Redis, as
pipelined XADDs to the same stream; without, straight into PostgreSQL (the queue then IS the
buffer, and `dropped_total` counts what did not fit while PostgreSQL was down).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..limits.store import StreamAppend
from .event import UsageEvent, stream_key
from .writer import Backoff, WriterStats

if TYPE_CHECKING:
    import redis.asyncio as aioredis  # a serving gateway imports redis-py only when it uses it

    from .db import LedgerDB  # psycopg: imported only when a ledger URL is set

log = logging.getLogger("aigw.ledger")

DEFAULT_MAXLEN = 1_000_000
DEFAULT_QUEUE = 100_000


class LedgerEmitter:
    def __init__(self, *, enabled: bool = False, maxlen: int = DEFAULT_MAXLEN, queue_size: int = DEFAULT_QUEUE) -> None:
        self.enabled = enabled
        self.maxlen = maxlen
        self.queue_size = queue_size
        self.dropped_total = 0
        self.stats = WriterStats()  # of direct inserts (no Redis)
        self._queue: deque[UsageEvent] = deque()
        self._wake = asyncio.Event()

    def append_for(self, event: UsageEvent | None, redis_configured: bool) -> StreamAppend | None:
        """The stream entry the settle script should append (None: queue the event instead)."""
        if event is None or not redis_configured:
            return None
        return StreamAppend(stream_key(event.namespace, event.gateway), self.maxlen, event.fields())

    def emit(self, event: UsageEvent) -> None:
        if len(self._queue) >= self.queue_size:
            self.dropped_total += 1
            if self.dropped_total in (1, 10, 100) or self.dropped_total % 1000 == 0:
                log.error("ledger: in-process queue full (%d events), %d events dropped so far",
                          self.queue_size, self.dropped_total)
            return
        self._queue.append(event)
        self._wake.set()

    async def drain(self, timeout: float) -> None:
        """At shutdown: give the running drain task up to `timeout` seconds to empty the queue."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._queue and asyncio.get_running_loop().time() < deadline:
            self._wake.set()
            await asyncio.sleep(0.05)
        if self._queue:
            log.error("ledger: %d queued usage events not written at shutdown", len(self._queue))

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def run(self, redis_client: Callable[[], aioredis.Redis | None], db: LedgerDB | None,
                  batch: int = 500) -> None:
        """Drain the queue forever: to the stream when Redis is configured, else to PostgreSQL."""
        backoff = Backoff()
        while True:
            if not self._queue:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                except TimeoutError:
                    continue
            events = [self._queue.popleft() for _ in range(min(batch, len(self._queue)))]
            client = redis_client()
            try:
                if client is not None:
                    async with client.pipeline(transaction=False) as pipe:
                        for event in events:
                            pipe.xadd(stream_key(event.namespace, event.gateway), dict(_pairs(event.fields())),  # type: ignore[arg-type]
                                      maxlen=self.maxlen, approximate=True)
                        await pipe.execute()
                elif db is not None:
                    written = await db.insert(events)
                    self.stats.rows_written += written
                    self.stats.postgres.succeeded()
                else:
                    self._queue.extendleft(reversed(events))  # nowhere to go yet: keep them (bounded)
                    await asyncio.sleep(1.0)
                    continue
                backoff.reset()
            except Exception as exc:  # Redis or PostgreSQL, whatever failed: keep the events, try again
                self._queue.extendleft(reversed(events))
                self.stats.insert_failures += 1
                if client is None:
                    self.stats.postgres.failed(exc)
                delay = backoff.next()
                log.warning("ledger: writing %d queued events failed (%s); retrying in %.1fs", len(events),
                            type(exc).__name__, delay)
                await asyncio.sleep(delay)


def _pairs(flat: list[str]):
    it = iter(flat)
    return zip(it, it)
