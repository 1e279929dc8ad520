"""The two deadlines of one unary attempt (first byte, whole request) on one loop timer.

`asyncio.timeout(first)` followed by `reschedule(whole)` once the head arrived costs two timers
per attempt (a cancel and a new one at the head), on every request. Here the timer is armed once,
at the first-byte deadline; the head only sets a flag, and only when that timer fires after the
head (an answer slower than firstByteSeconds to finish: rare) is it armed again for the rest.
Expiry is asyncio.timeout's (Python 3.11): the task is cancelled and TimeoutError raised in its
place, and a cancellation from elsewhere stays a cancellation.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class AttemptDeadline:
    __slots__ = ("_loop", "_first", "_final", "_head", "_handle", "_task", "_cancelling", "_expired")

    def __init__(self, loop: asyncio.AbstractEventLoop, first: float, final: float) -> None:
        """`first`, `final`: loop times; `first` ≤ `final`."""
        self._loop = loop
        self._first = first
        self._final = final
        self._head = False
        self._handle: asyncio.TimerHandle | None = None
        self._expired = False

    async def __aenter__(self) -> "AttemptDeadline":
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("AttemptDeadline should be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._handle = self._loop.call_at(self._first, self._fire)
        return self

    def head_arrived(self) -> None:
        """From now on only the whole-request deadline applies."""
        self._head = True

    def _fire(self) -> None:
        if self._head and self._final > self._first:
            self._first = self._final  # the rest of the budget, armed once
            self._handle = self._loop.call_at(self._final, self._fire)
            return
        self._handle = None
        self._expired = True
        self._task.cancel()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool | None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._expired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc
        return None
