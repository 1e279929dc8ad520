"""Settlements off the request path: queued by the request, sent by a drain in batches.

    queue = SettleQueue(send)          # send(batch) -> awaitable; never raises
    queue.put(pending)                 # no await: the response does not wait for Redis
    await queue.flush()                # everything queued so far has been sent (shutdown, reads)

Group commit, not a timer: the first settlement of an idle queue starts a drain task, which sends
what is queued at its next turn of the event loop (a request's settlement leaves within
microseconds of its response); while a batch is in flight the next ones gather and go together
when it returns. So at low load each settlement travels alone and at once, and under load a
round trip carries many; nothing ever waits for a timer, and a settlement is delayed by at most
the batch in flight before it (each bounded by the store's `op_timeout`). That bound is what a
concurrency slot waits for before it is freed, and what reservations stay counted for beyond
their request: delaying a settlement only makes admission more conservative, never looser.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .store import Settlement

MAX_BATCH = 256  # settlements per round trip: bounds the size of one pipelined write


@dataclass(slots=True)
class Pending:
    """A queued settlement and what to call with its outcome (whether its append happened)."""

    settlement: Settlement
    done: Callable[[bool], object] | None = None


class SettleQueue:
    def __init__(self, send: Callable[[list[Pending]], Awaitable[None]], max_batch: int = MAX_BATCH) -> None:
        self._send = send
        self.max_batch = max_batch
        self._queue: list[Pending] = []
        self._drain: asyncio.Task | None = None
        self.batches_total = 0  # round trips; with settled_total, the mean batch size
        self.settled_total = 0

    def put(self, pending: Pending) -> None:
        self._queue.append(pending)
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._run(), name="aigw-settle")

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def _run(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                self.batches_total += 1
                self.settled_total += len(batch)
                await self._send(batch)
        finally:
            self._drain = None

    async def flush(self) -> None:
        """Return once everything queued before the call has been sent (or failed, by the
        limiter's rules). Started again if a drain was cancelled with settlements left."""
        while self._drain is not None or self._queue:
            drain = self._drain
            if drain is None:
                drain = self._drain = asyncio.get_running_loop().create_task(self._run(), name="aigw-settle")
            await asyncio.shield(drain)
