"""A raw HTTP/1.1 upstream on 127.0.0.1 that answers exactly the bytes a test scripts.

It runs on the test's own event loop (``asyncio.start_server``), so the client under test and the
server share one loop and one clock. Each accepted TCP connection is a `RawConnection`, recorded
in `RawUpstream.connections` in accept order; it records every byte it received (`received`) and
notices the client's EOF (`peer_closed`). Requests are split on the wire by their head and
Content-Length (the gateway's upstream client only ever sends a sized body).

A test scripts the answer with `answer`, called once per request on a connection::

    async def answer(conn: RawConnection, request: RawRequest) -> None:
        conn.write(b"HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\nok")

    async with RawUpstream(answer) as upstream:
        ... upstream.url("/v1/x") ...

`answer` may stall (await `conn.stalled()`), write slowly, or `conn.close()`; bytes given
instead of a callable are written as the answer to every request. A connection's loop ends when
the client closes it, the answer closes it, or the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

MAX_HEAD = 1 << 20  # a request head larger than this is a client bug; the connection is dropped


@dataclass
class RawRequest:
    """One request as received: the exact head and body bytes, and the parsed request line."""

    head: bytes  # request line and header lines, up to and including the blank line
    body: bytes

    @property
    def raw(self) -> bytes:
        return self.head + self.body

    @property
    def request_line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    @property
    def method(self) -> str:
        return self.request_line.split(b" ", 1)[0].decode()

    @property
    def target(self) -> bytes:
        """The request target byte for byte (path and query as they went on the wire)."""
        return self.request_line.split(b" ")[1]

    @property
    def header_lines(self) -> list[tuple[bytes, bytes]]:
        """(name, value) per header line, names as sent (case kept), values stripped."""
        out = []
        for line in self.head.split(b"\r\n")[1:]:
            if line:
                name, _, value = line.partition(b":")
                out.append((name, value.strip()))
        return out

    def values(self, name: str) -> list[str]:
        """Every value of the header `name` (case-insensitive), in the order sent."""
        key = name.lower().encode()
        return [v.decode("latin-1") for n, v in self.header_lines if n.lower() == key]


@dataclass(eq=False)
class RawConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    received: bytearray = field(default_factory=bytearray)
    requests: list[RawRequest] = field(default_factory=list)
    peer_closed: asyncio.Event = field(default_factory=asyncio.Event)  # the client's EOF (or reset) was read
    _buffer: bytearray = field(default_factory=bytearray)
    _reading: bool = False

    async def _more(self) -> bool:
        self._reading = True
        try:
            data = await self.reader.read(65536)
        except (ConnectionError, OSError):
            data = b""
        finally:
            self._reading = False
        if not data:
            self.peer_closed.set()
            return False
        self.received += data
        self._buffer += data
        return True

    async def read_request(self) -> RawRequest | None:
        """The next request on this connection, or None when the client closed it."""
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD or not await self._more():
                return None
        head = bytes(self._buffer[:end + 4])
        del self._buffer[:end + 4]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(self._buffer) < length:
            if not await self._more():
                return None
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        request = RawRequest(head, body)
        self.requests.append(request)
        return request

    async def wait_peer_closed(self, timeout: float = 3.0) -> bool:
        """Read (and record) until the client closes; True if it did within `timeout`. (When the
        server's own loop is reading, wait for it to see the EOF.)"""
        async def drain() -> None:
            while not self.peer_closed.is_set():
                if self._reading:
                    await self.peer_closed.wait()
                elif not await self._more():
                    return
        try:
            await asyncio.wait_for(drain(), timeout)
        except TimeoutError:
            return False
        return True

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def send(self, data: bytes) -> bool:
        """Write and wait until the kernel took it; False if the client has gone."""
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError):
            return False
        return True

    async def stalled(self) -> None:
        """Never returns (the server's stop cancels it)."""
        await asyncio.Event().wait()

    def close(self) -> None:
        self.writer.close()

    def write_eof(self) -> None:
        """Half-close: the client reads EOF, this side can still read."""
        self.writer.write_eof()


Answer = Callable[[RawConnection, RawRequest], Awaitable[None]]


def fixed(data: bytes) -> Answer:
    async def answer(conn: RawConnection, request: RawRequest) -> None:
        conn.write(data)
    return answer


def response(body: bytes = b"ok", status: str = "200 OK", headers: tuple[str, ...] = ()) -> bytes:
    """An HTTP/1.1 answer with a Content-Length and the given extra header lines."""
    lines = [f"HTTP/1.1 {status}", f"content-length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class RawUpstream:
    """`answer` is run per request (bytes: that answer every time); `on_connect`, if given, runs
    instead of the request loop for each new connection (for answers that need no request, e.g.
    a greeting or a close at accept). `ssl` serves TLS."""

    def __init__(self, answer: Answer | bytes = response(), *, on_connect: Callable[[RawConnection], Awaitable[None]]
                 | None = None, ssl: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        self.answer = fixed(answer) if isinstance(answer, bytes) else answer
        self.on_connect = on_connect
        self.ssl = ssl
        self.host = host
        self.connections: list[RawConnection] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepted = asyncio.Condition()

    def url(self, path: str = "/", host: str | None = None) -> str:
        scheme = "https" if self.ssl else "http"
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    @property
    def requests(self) -> list[RawRequest]:
        """Every request received, in connection order then request order."""
        return [r for c in self.connections for r in c.requests]

    async def wait_connections(self, count: int, timeout: float = 3.0) -> list[RawConnection]:
        """Wait until at least `count` connections were accepted."""
        async with self._accepted:
            await asyncio.wait_for(self._accepted.wait_for(lambda: len(self.connections) >= count), timeout)
        return self.connections

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = RawConnection(reader, writer)
        async with self._accepted:
            self.connections.append(conn)
            self._accepted.notify_all()
        try:
            if self.on_connect is not None:
                await self.on_connect(conn)
                return
            while not writer.is_closing():
                request = await conn.read_request()
                if request is None:
                    break
                await self.answer(conn, request)
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def start(self) -> RawUpstream:
        self._server = await asyncio.start_server(self._serve, self.host, 0, ssl=self.ssl, backlog=256)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=3)

    async def __aenter__(self) -> RawUpstream:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
