"""A lean Redis client for the limiter's scripts: one pipelined connection, the hiredis parser.

    client = LeanRedis.from_url("redis://:password@127.0.0.1:6379/0")
    reply = await client.evalsha(sha, 2, "key1", "key2", "arg")     # as redis-py's, same errors
    replies = await client.execute_many([("EVALSHA", sha, 1, "k", 1), ...])   # one write, in order

Why not redis-py: per call, redis-py takes a connection from its pool (a lock and a condition),
builds the command through layers of encoders, awaits its own reader and hands it back; that
was most of the limiter's ~150 µs per request (admit + settle) measured in bench/redis_path.py.
Here every command is packed by hiredis in C and written to ONE connection that all requests
share (Redis answers in order, so a queue of futures pairs replies with callers); on an idle
connection the first command of an event-loop turn leaves at once (an admit does not wait for
a loop turn before it travels), every other command gathers with the turn's others and they
leave in one write at its end (under load, while replies are awaited, one write a turn as
before); the replies are parsed by hiredis as they arrive. `evalsha_started` sends when called,
not when awaited: the caller works while Redis answers.

It keeps redis-py's contract where RedisStore relies on it: the same exception classes
(`ConnectionError` for a lost or refused connection, `TimeoutError`, `NoScriptError`,
`ResponseError`), one immediate retry of a command whose connection broke before it was
answered (a socket that died with the old server; never after a timeout: the script may have
run), and reconnection on the next call once Redis is back. Timeouts cost no timer per call: a
connection whose waiting commands get no reply for `timeout` seconds fails them all with
`TimeoutError` and is dropped (checked every timeout/4, so a call gives up within 1.25 ×
`timeout`; replies already in the socket, unread by a busy loop, are not a timeout). `redis://` and `rediss://` URLs with a user, password and database; anything else
(unix sockets, URL options) takes redis-py (`limits_client` decides).
"""

from __future__ import annotations

import asyncio
import select
import ssl
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
from ..redis_errors import ConnectionError as RedisConnectionError
from ..redis_errors import NoScriptError, ResponseError
from ..redis_errors import TimeoutError as RedisTimeoutError

_pack = hiredis.pack_command


def _error(reply: hiredis.ReplyError) -> ResponseError:
    message = str(reply)
    return NoScriptError(message) if message.startswith("NOSCRIPT") else ResponseError(message)


class _Batch:
    """The replies of commands sent together: one future for all of them."""

    __slots__ = ("future", "left", "replies")

    def __init__(self, future: asyncio.Future, count: int) -> None:
        self.future, self.left, self.replies = future, count, []

    def done(self) -> bool:
        return self.future.done()

    def set_exception(self, exc: Exception) -> None:
        self.future.set_exception(exc)


class _Connection(asyncio.Protocol):
    """One socket: commands go out in order, replies come back in order.

    The timeout is the connection's, not each call's (no timer per command): a watchdog looks
    every quarter of it, and when commands wait and nothing has come back for `timeout`
    seconds, it fails them all with `TimeoutError` and drops the socket. Replies come in order,
    so when the oldest waiting command is unanswered, so are all the others."""

    def __init__(self, timeout: float) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future | _Batch] = deque()
        self.reader = hiredis.Reader()
        self.out: list[bytes] = []
        self.lost: Exception | None = None
        self.timeout = timeout
        self.progress = time.monotonic()  # the last reply, or the first command sent when none waited
        self._loop = asyncio.get_running_loop()
        self._watchdog: asyncio.TimerHandle | None = None
        self._gathering = False  # a write went out this loop turn: later commands wait for its end

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._watchdog = self._loop.call_later(self.timeout / 4, self._watch)

    def _watch(self) -> None:
        if self.lost is not None:
            return
        if self.waiting and time.monotonic() - self.progress >= self.timeout and not self._unread():
            self._abort(RedisTimeoutError(f"Redis answered nothing for {self.timeout:g}s"))
            return
        self._watchdog = self._loop.call_later(self.timeout / 4, self._watch)

    def _unread(self) -> bool:
        """Whether the socket holds bytes this loop has not read yet. uvloop runs due timers
        before it polls its sockets: on a loop busy for longer than `timeout` (a gateway at 100 %
        of its core), the watchdog would fail commands whose replies are already here, and a
        failed settlement is usage and spend not recorded although the script ran."""
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        try:
            return bool(sock is not None and select.select([sock.fileno()], [], [], 0)[0])
        except (OSError, ValueError):
            return False

    def send(self, packed: bytes) -> asyncio.Future:
        future = self._loop.create_future()
        idle = not self.waiting
        if idle:
            self.progress = time.monotonic()
        self.waiting.append(future)
        self._out(packed, idle)
        return future

    def send_many(self, packed: list[bytes]) -> asyncio.Future:
        future = self._loop.create_future()
        idle = not self.waiting
        if idle:
            self.progress = time.monotonic()
        self.waiting.append(_Batch(future, len(packed)))
        self._out(b"".join(packed), idle)
        return future

    def _out(self, data: bytes, idle: bool) -> None:
        """On an idle connection, the turn's first command is written now; the others (and every
        command while replies are awaited: a loaded gateway) leave together at the turn's end."""
        if not self._gathering:
            self._gathering = True
            self._loop.call_soon(self._flush)
            if idle and self.transport is not None and self.lost is None:
                self.transport.write(data)
                return
        self.out.append(data)

    def _flush(self) -> None:
        self._gathering = False
        out, self.out = self.out, []
        if out and self.transport is not None and self.lost is None:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def data_received(self, data: bytes) -> None:
        self.progress = time.monotonic()
        reader, waiting = self.reader, self.waiting
        reader.feed(data)
        while (reply := reader.gets()) is not False:
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self._abort(RedisConnectionError("Redis sent a reply nobody asked for"))
                return
            future = waiting[0]
            if type(future) is _Batch:
                future.replies.append(reply)
                future.left -= 1
                if future.left:
                    continue
                future, reply = future.future, future.replies
            waiting.popleft()
            if not future.done():  # its caller may have given up and gone
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed by the server'}"))

    def _abort(self, exc: Exception) -> None:
        """Drop the socket now: waiting commands fail with `exc`, later ones take a new connection."""
        self._fail(exc)
        self.transport.abort()  # type: ignore[union-attr]

    def _fail(self, exc: Exception) -> None:
        if self.lost is None:
            self.lost = exc
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(exc)

    def close(self) -> None:
        if self.transport is not None and self.lost is None:
            self.transport.close()


class LeanRedis:
    def __init__(self, host: str = "127.0.0.1", port: int = 6379, *, db: int = 0, username: str | None = None,
                 password: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 timeout: float = 0.5) -> None:  # fmt: skip
        self.host, self.port, self.db = host, port, db
        self.username, self.password, self.ssl_context = username, password, ssl_context
        self.timeout = timeout
        self._conn: _Connection | None = None
        self._connecting: asyncio.Future | None = None
        self._closed = False

    @classmethod
    def supports(cls, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in ("redis", "rediss") and not parts.query and bool(parts.hostname)

    @classmethod
    def from_url(cls, url: str, timeout: float = 0.5) -> LeanRedis:
        parts = urlsplit(url)
        if not cls.supports(url):
            raise ValueError("LeanRedis takes redis:// or rediss:// URLs without options")
        path = parts.path.strip("/")
        return cls(
            parts.hostname or "127.0.0.1", parts.port or 6379, db=int(path) if path else 0,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            ssl_context=ssl.create_default_context() if parts.scheme == "rediss" else None, timeout=timeout,
        )  # fmt: skip

    async def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and conn.lost is None:
            return conn
        if self._closed:
            raise RedisConnectionError("the client is closed")
        if self._connecting is None:  # one connect for all the callers that need it
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                _, conn = await loop.create_connection(lambda: _Connection(self.timeout), self.host, self.port, ssl=self.ssl_context)
                hello: list[Sequence[Any]] = []
                if self.password is not None:
                    hello.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
                if self.db:
                    hello.append(("SELECT", self.db))
                for reply in await asyncio.gather(*(conn.send(_pack(tuple(c))) for c in hello)):
                    if isinstance(reply, hiredis.ReplyError):
                        conn.close()
                        raise RedisConnectionError(f"Redis refused the connection setup: {reply}")
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"cannot connect to Redis at {self.host}:{self.port}: {exc}") from exc
        self._conn = conn
        return conn

    def execute(self, *args: Any) -> Coroutine[Any, Any, Any]:
        """One command; its reply, or the reply's error raised (redis-py's classes)."""
        return self._call(_pack(args))

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Coroutine[Any, Any, Any]:
        return self._call(_pack(("EVALSHA", sha, numkeys, *keys_and_args)))

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Coroutine[Any, Any, Any]:
        return self._call(_pack(("EVAL", script, numkeys, *keys_and_args)))

    def evalsha_started(self, sha: str, numkeys: int, *keys_and_args: Any) -> Coroutine[Any, Any, Any]:
        """`evalsha` whose command is written now, on a live connection (else when awaited):
        the caller can work until the answer comes. Await it, always: the script may have run."""
        packed = _pack(("EVALSHA", sha, numkeys, *keys_and_args))
        conn = self._conn
        if conn is None or conn.lost is not None:
            return self._call(packed)
        return self._answer(conn.send(packed), packed)

    async def _call(self, packed: bytes) -> Any:
        conn = self._conn
        if conn is None or conn.lost is not None:
            conn = await self._connection()
        return await self._answer(conn.send(packed), packed)

    async def _answer(self, sent: asyncio.Future, packed: bytes) -> Any:
        try:
            reply = await sent
        except RedisConnectionError:  # the socket broke before the answer (a restarted server): once more
            reply = await (await self._connection()).send(packed)
        if type(reply) is hiredis.ReplyError:
            raise _error(reply)
        return reply

    async def execute_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Commands in one write; their replies in order, an error reply as its exception (not
        raised). A broken connection raises `ConnectionError` for the lot: whether the commands
        ran is unknown, so they are not sent again."""
        if not commands:
            return []
        packed = [_pack(tuple(c)) for c in commands]
        conn = await self._connection()
        return [_error(r) if isinstance(r, hiredis.ReplyError) else r for r in await conn.send_many(packed)]

    async def aclose(self) -> None:
        self._closed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None
