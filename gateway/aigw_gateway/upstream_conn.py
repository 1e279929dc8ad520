"""One HTTP/1.1 connection to an upstream: the asyncio protocol, its response parser and the
answer's bounded body.

The parser is httptools (llhttp, the C parser Node.js uses; uvicorn's server side already loads it).
A connection carries one exchange at a time. The answer's body pieces land in a `Body` owned by the
answer, not by the connection: when the parser reaches the end of a kept-alive answer the
connection goes straight back to its pool, while the caller reads what was buffered.

Bounds, all enforced here: a response head over `MAX_HEAD_BYTES` or `MAX_HEADERS` fields fails;
reading pauses while more than `HIGH_WATER` bytes wait for a slow reader; the body, counted before
and after decompression, stops at the route's limit; gzip/deflate inflate in pieces of at most
`INFLATE_PIECE` bytes, so a bomb is cut off at the limit, never held in memory.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any

import httptools


MAX_HEAD_BYTES = 64 * 1024   # an upstream's status line and headers
MAX_HEADERS = 256
HIGH_WATER = 256 * 1024      # buffered body bytes at which the socket stops being read
LOW_WATER = 64 * 1024        # ... and below which it is read again
INFLATE_PIECE = 256 * 1024   # the most one decompress step produces


class UpstreamTransportError(Exception):
    """A failure talking to the upstream (mapped once, in upstream.map_transport_error)."""


class UpstreamConnectFailed(UpstreamTransportError):
    """No connection: refused, unresolvable, TLS handshake or certificate refused."""


class UpstreamConnectTimeout(UpstreamTransportError, TimeoutError):
    """The connection (TCP and TLS) was not up within the connect timeout."""


class UpstreamDisconnected(UpstreamTransportError):
    """The upstream closed the connection before its answer was complete."""


class UpstreamProtocolError(UpstreamTransportError):
    """The upstream's bytes are not a valid HTTP/1.1 answer, or its head passed a bound."""


class InvalidRequestHeader(UpstreamTransportError):
    """A request header name or value holds a CR, LF or NUL (it would inject a header): not sent."""


class UpstreamReadTimeout(UpstreamTransportError, TimeoutError):
    """Nothing arrived from the upstream within the read timeout."""


class BodyTooLarge(UpstreamTransportError):
    """The answer passed the caller's byte limit (raised as UpstreamResponseTooLarge by the reader)."""


def expire(waiter: asyncio.Future[Any]) -> None:
    """A read timeout: the wait on `waiter` (a head or body piece) ends with UpstreamReadTimeout."""
    if not waiter.done():
        waiter.set_exception(UpstreamReadTimeout())


class Body:
    """The answer's body as it arrives: raw pieces, a wake-up for the reader, end or error.

    Decompression happens on the reader's side, one bounded step at a time."""

    __slots__ = ("pieces", "buffered", "eof", "error", "waiter", "conn", "raw_total", "limit")

    def __init__(self, conn: Connection, limit: int) -> None:
        self.pieces: deque[bytes] = deque()
        self.buffered = 0
        self.eof = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.conn: Connection | None = conn  # None once the exchange is over (the connection may serve another)
        self.raw_total = 0
        self.limit = limit

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def feed(self, data: bytes) -> None:
        self.pieces.append(data)
        self.buffered += len(data)
        self.raw_total += len(data)
        self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        if error is not None and self.error is None:
            self.error = error
        self.eof = True
        self.conn = None
        self._wake()

    async def take(self, loop: asyncio.AbstractEventLoop, timeout: float) -> bytes | None:
        """Everything buffered, joined (waiting up to `timeout` for something); None at the end."""
        while not self.pieces:
            if self.error is not None:
                raise self.error
            if self.eof:
                return None
            waiter = self.waiter = loop.create_future()
            handle = loop.call_later(timeout, expire, waiter)
            try:
                await waiter
            except BaseException:
                self.abandon()
                raise
            finally:
                handle.cancel()
                self.waiter = None
        return self.drain()

    def drain(self) -> bytes:
        """What is buffered, joined (the socket is read again if it was paused)."""
        pieces = self.pieces
        data = pieces.popleft() if len(pieces) == 1 else b"".join(pieces)
        pieces.clear()
        self.buffered = 0
        conn = self.conn
        if conn is not None and conn.paused:
            conn.resume()
        return data

    def abandon(self) -> None:
        """The reader stops before the end: the connection is closed, never pooled half-read."""
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.close()
        self.eof = True


class Inflater:
    """gzip or deflate (zlib-wrapped or raw, told apart by the first byte as browsers do), in
    steps of at most INFLATE_PIECE output bytes."""

    __slots__ = ("_obj", "_gzip", "tail")

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding in ("gzip", "x-gzip")
        self._obj: Any = zlib.decompressobj(16 + zlib.MAX_WBITS) if self._gzip else None
        self.tail = b""

    def step(self, data: bytes) -> bytes:
        obj = self._obj
        if obj is None:  # deflate: zlib header (CM=8 in the low nibble) or raw deflate
            obj = self._obj = zlib.decompressobj(zlib.MAX_WBITS if data and data[0] & 0x0F == 8 else -zlib.MAX_WBITS)
        try:
            out = obj.decompress(data, INFLATE_PIECE)
        except zlib.error:
            raise UpstreamProtocolError("the upstream's compressed body is corrupt") from None
        self.tail = obj.unconsumed_tail
        return out

    def end(self) -> bytes:
        obj = self._obj
        return obj.flush() if obj is not None else b""


Head = tuple[int, list[tuple[bytes, bytes]], str, Body]  # status, raw headers, content-encoding, body


class Connection(asyncio.Protocol):
    """One kept-alive upstream connection; `release` hands it back to its pool after a complete,
    reusable answer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, release: Callable[[Connection], None]) -> None:
        self.loop = loop
        self._release = release
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.paused = False
        self.idle_since = 0.0
        self.key: Any = None
        self.head: asyncio.Future[Head] | None = None
        self.body: Body | None = None
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.encoding = ""
        self._head_bytes = 0
        self._in_head = False
        self._framed = False  # Content-Length or chunked: the end is known without the close
        self._informational = False

    # -- exchange, called by the pool's user ---------------------------------------------------

    def start(self, data: bytes, limit: int) -> asyncio.Future[Head]:
        self.head = head = self.loop.create_future()
        self.body = Body(self, limit)
        self.raw_headers = []
        self.encoding = ""
        self._head_bytes = 0
        self._in_head = True
        self._framed = False
        self._informational = False
        self.transport.write(data)  # type: ignore[union-attr]
        return head

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def resume(self) -> None:
        self.paused = False
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.body is None:  # bytes while idle: the connection is not in a known state
            self.close()
            return
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError("the upstream switched protocols"))
            return
        except httptools.HttpParserError as exc:
            cause = exc.__context__  # raised by a callback below: its own message
            self._fail(cause if isinstance(cause, UpstreamTransportError)
                       else UpstreamProtocolError("the upstream's answer is not valid HTTP/1.1"))
            return
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES and self.body is not None:
            self._fail(UpstreamProtocolError(f"the upstream's response head exceeds {MAX_HEAD_BYTES} bytes"))

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost settles the exchange

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        body = self.body
        if body is None:  # idle (or already settled): the pool forgets it
            self._release(self)
            return
        if not self._in_head and not self._framed and body.error is None and not self._informational:
            self._complete(reuse=False)  # the answer was delimited by the close
            return
        self._fail(UpstreamDisconnected("the upstream closed the connection before its answer was complete"))

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.body is None:  # an answer nobody asked for (after the last one, in the same bytes)
            raise UpstreamProtocolError("the upstream sent an answer to no request")

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.raw_headers
        if len(headers) >= MAX_HEADERS:
            raise UpstreamProtocolError(f"the upstream's response head has more than {MAX_HEADERS} fields")
        headers.append((name, value))
        lname = name.lower()
        if lname == b"content-encoding":
            self.encoding = value.decode("latin-1").strip().lower()
        elif lname == b"content-length" or (lname == b"transfer-encoding" and b"chunked" in value.lower()):
            self._framed = True

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # 100 Continue, 103 Early Hints: the real answer follows
            self._informational = True
            self.raw_headers = []
            self.encoding = ""
            self._framed = False
            return
        self._in_head = False
        head = self.head
        if status in (204, 304):
            self._framed = True
        if head is not None and not head.done():
            # a snapshot: by the time the caller wakes, this connection may serve another request
            head.set_result((status, self.raw_headers, self.encoding, self.body))  # type: ignore[arg-type]

    def on_body(self, data: bytes) -> None:
        body = self.body
        if body is None:
            return
        body.feed(data)
        if body.raw_total > body.limit:
            self._fail(BodyTooLarge())
            return
        if body.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            self._head_bytes = 0
            return
        self._complete(reuse=self.parser.should_keep_alive())

    # -- endings -------------------------------------------------------------------------------

    def _complete(self, reuse: bool) -> None:
        body = self.body
        self.body = None
        self.head = None
        self.raw_headers = []
        if body is not None:
            body.finish()
        if self.paused:
            self.resume()
        if reuse and not self.closed:
            self._release(self)
        else:
            self.close()
            self._release(self)

    def _fail(self, error: BaseException) -> None:
        head, body = self.head, self.body
        self.head = self.body = None
        if head is not None and not head.done():
            head.set_exception(error)
            head.exception()  # read here: a failed wait the caller already left is not "never retrieved"
        if body is not None:
            body.finish(error)
        self.close()
        self._release(self)
