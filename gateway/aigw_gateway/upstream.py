"""The one upstream HTTP client of a gateway process, and the mapping of its failures.

Measured with shared/bench on this 2-core machine: httpx's own pool scans every connection per
request (about 365 req/s per core in a bare proxy); aiohttp about six times that. aiohttp still
cost a gateway request ~100 µs of CPU (session, request and response models, header multidicts,
per-read timers), so the hot path speaks HTTP/1.1 itself: requests are encoded here in one write,
answers parsed by httptools (llhttp) in `upstream_conn.py`, connections kept in a small pool per
(scheme, host, port). httpx stays the API of the Kubernetes client (kube_watch.py) and of tests.

What it does, and what it does not:
- URLs are sent exactly as the adapter built them: AWS SigV4 signs the path byte for byte.
- No cookie jar (one client serves every tenant), no redirects, no proxies from the environment,
  no User-Agent of its own; `Accept: */*` and `Accept-Encoding: gzip, deflate` unless given.
- TLS with the system's trust store (`ssl.create_default_context()`, honouring SSL_CERT_FILE and
  SSL_CERT_DIR), certificate and host name checked, SNI sent.
- Keep-alive: an idle connection is reused last-in first-out and closed after `KEEPALIVE_SECONDS`
  idle; at most `MAX_CONNECTIONS` open (more requests wait for one). A failed request is not
  retried here: whether to try again, and where, is the router's decision.
- Timeouts: `connect_timeout` for TCP and TLS; `read_timeout` for each wait on the upstream
  (the head, then every body read), not for the whole answer.

The pool is shared by every config generation: a swap drops neither connections nor requests.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from .errors import (
    GatewayError, UpstreamBadResponse, UpstreamConnectError, UpstreamError, UpstreamResponseTooLarge, UpstreamTimeout,
)
from .providers.base import UpstreamRequest
from .upstream_conn import (
    BodyTooLarge, Connection, Head, Inflater, InvalidRequestHeader, UpstreamConnectFailed, UpstreamConnectTimeout,
    UpstreamDisconnected, UpstreamProtocolError, UpstreamTransportError, expire,
)


DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
MAX_CONNECTIONS = 1000
KEEPALIVE_SECONDS = 30.0
_SWEEP_SECONDS = 5.0


def too_large(limit: int) -> UpstreamResponseTooLarge:
    return UpstreamResponseTooLarge(f"the upstream answer exceeds {limit} bytes (the route's "
                                    "spec.limits.maxResponseBytes); the rest was not read")


class UpstreamResponse:
    """An upstream answer whose body is read within `limit` bytes, counted before and after
    decompression."""

    __slots__ = ("status", "_headers", "_raw", "_body", "_inflater", "_loop", "_timeout", "limit", "_size")

    def __init__(self, head: Head, loop: asyncio.AbstractEventLoop, read_timeout: float) -> None:
        self.status, self._raw, encoding, self._body = head
        self._inflater = Inflater(encoding) if encoding in ("gzip", "x-gzip", "deflate") else None
        self._loop = loop
        self._timeout = read_timeout
        self.limit = self._body.limit
        self._size = 0
        self._headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The answer's headers, lower-cased, the last of repeated names (built when first asked)."""
        if self._headers is None:
            self._headers = {k.decode("latin-1").lower(): v.decode("utf-8", "surrogateescape") for k, v in self._raw}
        return self._headers

    async def _piece(self) -> bytes | None:
        """The next decoded piece (None at the end), counted against the limit."""
        inflater = self._inflater
        try:
            if inflater is None:
                data = await self._body.take(self._loop, self._timeout)
            else:
                data = b""
                while not data:
                    if inflater.tail:
                        data = inflater.step(inflater.tail)
                        continue
                    raw = await self._body.take(self._loop, self._timeout)
                    if raw is None:
                        data = inflater.end()
                        self._inflater = None
                        break
                    data = inflater.step(raw)
        except BodyTooLarge:
            raise too_large(self.limit) from None
        except BaseException:
            self._body.abandon()
            raise
        if data is not None:
            self._size += len(data)
            if self._size > self.limit:
                self._body.abandon()
                raise too_large(self.limit)
        return data

    async def read(self) -> bytes:
        body = self._body
        if self._inflater is None and body.eof and body.error is None:  # the usual small answer, all here
            return body.drain()
        parts = []
        while (piece := await self._piece()) is not None:
            if piece:
                parts.append(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body pieces as they arrive (no line buffering), within `limit` bytes in all."""
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while (piece := await self._piece()) is not None:
            if piece:
                yield piece

    async def aclose(self) -> None:
        self._body.abandon()

    def __del__(self) -> None:  # dropped half-read on some path: never leave its connection checked out
        body = getattr(self, "_body", None)
        if body is not None and body.conn is not None:
            try:
                body.abandon()
            except Exception:  # noqa: S110 - the loop is gone (interpreter exit): so is the connection
                pass


class _Target:
    """A parsed upstream URL."""

    __slots__ = ("key", "host", "port", "tls", "host_header", "path")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:  # a port out of range or not a number
            port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
            raise UpstreamConnectFailed("the upstream URL is not http(s)://host[:port]/...")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = port or (443 if self.tls else 80)
        self.host_header = parts.netloc.rpartition("@")[2]
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.key = (self.tls, self.host, self.port)


_TARGETS: dict[str, _Target] = {}
_MAX_TARGETS = 1024  # distinct upstream URLs kept parsed (a few per target); cleared when full
_NOT_FORWARDED = frozenset(("content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te"))
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))


def _target(url: str) -> _Target:
    target = _TARGETS.get(url)
    if target is None:
        if len(_TARGETS) >= _MAX_TARGETS:
            _TARGETS.clear()
        target = _TARGETS[url] = _Target(url)
    return target


def encode_request(request: UpstreamRequest, target: _Target) -> bytes:
    """The request's bytes: request line, Host, the caller's headers (framing ones computed
    here), the two defaults, the body."""
    host = target.host_header
    lines = [f"{request.method} {target.path} HTTP/1.1\r\n"]
    accept = encoding = False
    for name, value in request.headers.items():
        lname = name.lower()
        if lname == "host":
            host = value
            continue
        if lname in _NOT_FORWARDED:
            continue
        if lname == "accept":
            accept = True
        elif lname == "accept-encoding":
            encoding = True
        lines.append(f"{name}: {value}\r\n")
    lines[0] += f"Host: {host}\r\n"
    content = request.content
    if content or request.method in _BODY_METHODS:
        lines.append(f"Content-Length: {len(content)}\r\n")
    if not accept:
        lines.append("Accept: */*\r\n")
    if not encoding:
        lines.append("Accept-Encoding: gzip, deflate\r\n")
    lines.append("\r\n")
    head = "".join(lines)
    # a CR or LF inside a name or value would split it into a header of its own (header injection)
    if head.count("\n") != len(lines) + 1 or head.count("\r") != len(lines) + 1 or "\0" in head:
        raise InvalidRequestHeader()
    return head.encode() + content if content else head.encode()


class _Pool:
    """Open connections per (tls, host, port): idle ones last-in first-out, a cap on all of them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.idle: dict[tuple, list[Connection]] = {}
        self.open: set[Connection] = set()
        self.waiters: deque[asyncio.Future[None]] = deque()
        self._ssl: ssl.SSLContext | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    def release(self, conn: Connection) -> None:
        """Called by a connection when its exchange is over (or it closed)."""
        if conn.closed:
            if conn in self.open:
                self.open.discard(conn)
                idle = self.idle.get(conn.key)
                if idle and conn in idle:
                    idle.remove(conn)
                self._wake()
            return
        conn.idle_since = self.loop.time()
        self.idle.setdefault(conn.key, []).append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(_SWEEP_SECONDS, self._sweep)
        self._wake()

    def _wake(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _sweep(self) -> None:
        """Close connections idle for KEEPALIVE_SECONDS (their fds do not linger after a burst)."""
        self._sweeper = None
        expired = self.loop.time() - KEEPALIVE_SECONDS
        for idle in list(self.idle.values()):
            while idle and idle[0].idle_since <= expired:
                idle.pop(0).close()
        if any(self.idle.values()):
            self._sweeper = self.loop.call_later(_SWEEP_SECONDS, self._sweep)

    def _take_idle(self, key: tuple) -> Connection | None:
        idle = self.idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn
        return None

    async def acquire(self, target: _Target, connect_timeout: float) -> Connection:
        conn = self._take_idle(target.key)
        if conn is not None:
            return conn
        while len(self.open) >= MAX_CONNECTIONS:
            waiter = self.loop.create_future()
            self.waiters.append(waiter)
            await waiter  # a connection closed or went idle: look again
            conn = self._take_idle(target.key)
            if conn is not None:
                return conn
            if len(self.open) >= MAX_CONNECTIONS:  # idle ones of other hosts make room
                for idle in self.idle.values():
                    if idle:
                        idle.pop(0).close()
                        break
        return await self._connect(target, connect_timeout)

    async def _connect(self, target: _Target, connect_timeout: float) -> Connection:
        context = None
        if target.tls:
            context = self._ssl
            if context is None:  # reading the trust store takes milliseconds: not on the event loop
                context = self._ssl = await asyncio.to_thread(ssl.create_default_context)
        conn = Connection(self.loop, self.release)
        conn.key = target.key
        self.open.add(conn)
        try:
            async with asyncio.timeout(connect_timeout):
                await self.loop.create_connection(lambda: conn, target.host, target.port, ssl=context,
                                                  server_hostname=target.host if context else None)
        except TimeoutError:
            self._drop(conn)
            raise UpstreamConnectTimeout() from None
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._drop(conn)
            raise UpstreamConnectFailed(type(exc).__name__) from None
        except BaseException:
            self._drop(conn)
            raise
        return conn

    def _drop(self, conn: Connection) -> None:
        conn.close()
        conn.closed = True
        self.release(conn)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self.open):
            conn.close()
        self.idle.clear()


class UpstreamClient:
    def __init__(self) -> None:
        self._pool: _Pool | None = None

    @property
    def pool(self) -> _Pool:
        if self._pool is None:  # created lazily: it must be bound to the running loop
            self._pool = _Pool(asyncio.get_running_loop())
        return self._pool

    async def send(self, request: UpstreamRequest, *, connect_timeout: float, read_timeout: float,
                   max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> UpstreamResponse:
        """Send and wait for the response head; failures raise TRANSPORT_ERRORS (see `map_transport_error`)."""
        target = _target(request.url)
        data = encode_request(request, target)
        pool = self.pool
        conn = await pool.acquire(target, connect_timeout)
        loop = pool.loop
        head = conn.start(data, max_bytes)
        handle = loop.call_later(read_timeout, expire, head)
        try:
            answer = await head
        except BaseException:
            conn.close()
            raise
        finally:
            handle.cancel()
        return UpstreamResponse(answer, loop, read_timeout)

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.close()


TRANSPORT_ERRORS = (UpstreamTransportError, TimeoutError, OSError)


def map_transport_error(exc: BaseException, target: str) -> GatewayError:
    """Map a transport failure once; messages name the target, never its URL or keys."""
    if isinstance(exc, UpstreamConnectFailed):
        return UpstreamConnectError(f"upstream {target} is unreachable")
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"upstream {target} timed out")
    if isinstance(exc, (UpstreamDisconnected, OSError)):
        return UpstreamError(f"upstream {target} closed the connection")
    if isinstance(exc, UpstreamProtocolError):
        return UpstreamBadResponse(f"upstream {target} sent an invalid answer: {exc}")
    if isinstance(exc, InvalidRequestHeader):
        return UpstreamError(f"the request to upstream {target} was not sent: a header holds a line break or NUL")
    return UpstreamError(f"upstream {target} failed: {type(exc).__name__}")
