"""Limits on what a client may make the HTTP server hold: head size, header count, read deadlines.

uvicorn's httptools protocol (the fastest it has; measured in bench/) has none of these: a
16 MiB header or 100,000 headers were served, an unfinished 300 MiB header grew the process to
495 MB, and half-sent requests stayed open forever (slowloris). This subclass adds them at a
per-request cost within the noise of a micro-benchmark (about 20 us of uvicorn's own work per
kept-alive request either way): the deadlines are two float assignments per request, checked by
one sweep per process every half second (no timer armed and cancelled per request), and bytes
are counted only while a head is incomplete. Envoy's and nginx's defaults are the reference
(Envoy: 60 KiB of headers, 100 headers; nginx: 60 s header and body timeouts).

- A head (request line + headers) over `max_header_bytes`, or more than `max_header_count`
  headers: 431 and the connection is closed, before the app sees anything. Bytes of an
  incomplete head are counted as they arrive, so an endless header costs at most the limit
  plus one read.
- A head not complete within `header_timeout` seconds of the connection opening (or of the
  request's first byte on a kept-alive connection): 408 (or a silent close when nothing came).
- A body not complete within `body_timeout` seconds after its head: 408 when no response has
  started, else the connection is closed; the app sees a client disconnect (logged once, 499).
- uvicorn's keep-alive timeout is a deadline of the same sweep (no timer per answer either).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .http_head_join import HeadJoiner

log = logging.getLogger("aigw.http")


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int = 64 * 1024
    max_header_count: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 60.0


_limits = HttpLimits()


def configure(limits: HttpLimits) -> None:
    """Set this process's limits (before the server accepts connections; each worker calls it)."""
    global _limits
    _limits = limits


def current() -> HttpLimits:
    return _limits


class _HeadRejected(Exception):
    pass


_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


_IDLE, _HEAD, _BODY, _KEEP_ALIVE = 0, 1, 2, 3
SWEEP_SECONDS = 0.5  # deadline precision; one pass over the connections per sweep
_sweeping: set[int] = set()  # ids of the connection sets a sweep already runs for


def _sweep(loop, connections: set) -> None:
    """Expire the heads and bodies past their deadline. One timer per process instead of a timer
    armed and cancelled per request: per request, the deadlines are two float assignments."""
    now = loop.time()
    for conn in tuple(connections):
        if getattr(conn, "_phase", _IDLE) and now >= conn._deadline_at:
            conn._expire()
    loop.call_later(SWEEP_SECONDS, _sweep, loop, connections)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with head size/count limits and head/body read deadlines, whose
    responses send their head with their first body part (http_head_join.py)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._limits = _limits
        self._head_bytes = 0  # bytes received while the current head is incomplete
        self._head_size = 0  # request line + header names and values, exactly
        self._header_count = 0
        self._in_head = True
        self._reject = 0  # status to answer instead of serving the request
        self._phase = _IDLE  # which deadline runs
        self._deadline_at = 0.0

    # --- deadlines ----------------------------------------------------------------------------
    def _expire(self) -> None:
        phase, self._phase = self._phase, _IDLE
        if self.transport.is_closing():
            return
        if phase == _KEEP_ALIVE:
            self.transport.close()  # uvicorn's timeout_keep_alive_handler
            return
        if phase == _HEAD:
            log.debug("closing a connection whose request head did not arrive in %.0fs", self._limits.header_timeout)
            if self._head_bytes or self._head_size:
                self._answer_and_close(408)
            else:
                self.transport.close()
            return
        log.debug("closing a connection whose request body did not arrive in %.0fs", self._limits.body_timeout)
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            cycle.disconnected = True  # the app's receive() sees a disconnect; its response is dropped
            cycle.message_event.set()
            self._answer_and_close(408)
        else:
            self.transport.close()

    def _answer_and_close(self, status: int) -> None:
        body = _REASONS[status]
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
                             b"connection: close\r\n\r\n%s" % (status, body, len(body), body))
        self.transport.close()

    # --- connection -------------------------------------------------------------------------------
    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self._limits.header_timeout > 0:
            self._phase, self._deadline_at = _HEAD, self.loop.time() + self._limits.header_timeout
        if id(self.connections) not in _sweeping:
            _sweeping.add(id(self.connections))
            self.loop.call_later(SWEEP_SECONDS, _sweep, self.loop, self.connections)

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = _IDLE
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reject:
            return
        if self._in_head:
            self._head_bytes += len(data)
        if self._phase == _KEEP_ALIVE:
            self._phase = _IDLE
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._reject:
                self._phase = _IDLE
                self._answer_and_close(self._reject)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        if self._in_head and self._head_bytes > self._limits.max_header_bytes:
            self._reject = 431  # an incomplete head already past the limit: stop buffering it
            self._phase = _IDLE
            self._answer_and_close(431)

    # --- parser callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # the next request on a kept-alive connection
            self._in_head = True
            self._head_bytes = 0
            if self._limits.header_timeout > 0:
                self._phase, self._deadline_at = _HEAD, self.loop.time() + self._limits.header_timeout
        self._head_size = 0
        self._header_count = 0

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        if self._head_size > self._limits.max_header_bytes:
            self._reject = 431
            raise _HeadRejected
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._head_size += len(name) + len(value) + 4
        if self._header_count > self._limits.max_header_count or self._head_size > self._limits.max_header_bytes:
            self._reject = 431
            raise _HeadRejected
        # uvicorn's on_header, inlined (one Python call per header less)
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._limits.body_timeout > 0:
            self._phase, self._deadline_at = _BODY, self.loop.time() + self._limits.body_timeout
        else:
            self._phase = _IDLE
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not previous:  # a new request (an upgrade makes none): its head joins its body
            cycle.transport = HeadJoiner(self.transport, self.loop)

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        super().on_message_complete()

    def on_response_complete(self) -> None:
        """uvicorn's, with the keep-alive timeout as a deadline the sweep checks instead of a timer
        armed per answer and cancelled by the next request (the common case: nothing pipelined,
        no request under way). An idle connection closes `timeout_keep_alive` to that plus
        SWEEP_SECONDS after its last answer."""
        if self.pipeline or self._phase != _IDLE or self.timeout_keep_alive <= 0:
            super().on_response_complete()
            return
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        self._phase, self._deadline_at = _KEEP_ALIVE, self.loop.time() + self.timeout_keep_alive
