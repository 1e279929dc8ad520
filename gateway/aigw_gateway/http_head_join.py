"""The response head and the first body bytes leave in one write.

uvicorn's RequestResponseCycle writes the status line and headers in one `transport.write` and
each body part in another: a unary answer costs two send syscalls and two TCP segments (measured
in bench/: the head's write was the largest self-time line of the HTTP server). `HeadJoiner`
stands in for the transport of one cycle (the protocol sets `cycle.transport`; the cycle only
calls `write`, `close` and `is_closing`) and holds the head until whichever comes first:

- the cycle's next write (the first body part): head and part go out in one write;
- `close()` (an app that raised after starting, `connection: close`): the head goes first;
- the event loop's next turn (`call_soon`): a head whose body does not follow at once (an SSE
  stream waiting for its first event, a HEAD answer) is delayed by one turn at most.

Writes before the response starts (`100 Continue`) and after the head pass straight through. The
first write that is not the `100 Continue` line is the head: before its response starts, a cycle
writes nothing else. (Asking the cycle instead would tie it and this object in a reference cycle,
leaving every request's cycle, scope and body to the garbage collector.)
"""

from __future__ import annotations

import asyncio

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_COPY_MAX = 64 * 1024
"""Bodies up to this size are joined to the head by one copy; larger ones go as two buffers of
one `writelines` (one writev on uvloop, no copy)."""


class HeadJoiner:
    __slots__ = ("transport", "_loop", "_head", "_armed")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._head: bytes | None = None
        self._armed = True  # the head is still to come

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if len(data) <= _COPY_MAX:
                self.transport.write(head + data)
            else:
                self.transport.writelines((head, data))
        elif self._armed and data != _CONTINUE:
            self._armed = False
            self._head = data
            self._loop.call_soon(self.flush)
        else:
            self.transport.write(data)

    def flush(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if not self.transport.is_closing():
                self.transport.write(head)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()
