"""Limits on what a client may make the HTTP server hold: head size, header count, read deadlines.

uvicorn's httptools protocol (the fastest it has; measured in bench/) has none of these: a
16 MiB header or 100,000 headers were served, an unfinished 300 MiB header grew the process to
495 MB, and half-sent requests stayed open forever (slowloris). This subclass adds them with
per-connection work only where it matters: two timers per request (head and body deadlines)
and a byte count while a head is incomplete. Envoy's and nginx's defaults are the reference
(Envoy: 60 KiB of headers, 100 headers; nginx: 60 s header and body timeouts).

- A head (request line + headers) over `max_header_bytes`, or more than `max_header_count`
  headers: 431 and the connection is closed, before the app sees anything. Bytes of an
  incomplete head are counted as they arrive, so an endless header costs at most the limit
  plus one read.
- A head not complete within `header_timeout` seconds of the connection opening (or of the
  request's first byte on a kept-alive connection): 408 (or a silent close when nothing came).
- A body not complete within `body_timeout` seconds after its head: 408 when no response has
  started, else the connection is closed; the app sees a client disconnect (logged once, 499).
"""

from __future__ import annotations

import logging
from asyncio import TimerHandle
from dataclasses import dataclass

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with head size/count limits and head/body read deadlines."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._limits = _limits
        self._head_bytes = 0  # bytes received while the current head is incomplete
        self._head_size = 0  # request line + header names and values, exactly
        self._header_count = 0
        self._in_head = True
        self._reject = 0  # status to answer instead of serving the request
        self._deadline: TimerHandle | None = None

    # --- deadlines ----------------------------------------------------------------------------
    def _arm(self, seconds: float, callback) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(seconds, callback) if seconds > 0 else None

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._head_bytes or self._head_size:
            log.debug("closing a connection whose request head did not arrive within %.0fs", self._limits.header_timeout)
            self._answer_and_close(408)
        else:
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        log.debug("closing a connection whose request body did not arrive within %.0fs", self._limits.body_timeout)
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
        self._arm(self._limits.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reject:
            return
        if self._in_head:
            self._head_bytes += len(data)
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
                self._disarm()
                self._answer_and_close(self._reject)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        if self._in_head and self._head_bytes > self._limits.max_header_bytes:
            self._reject = 431  # an incomplete head already past the limit: stop buffering it
            self._disarm()
            self._answer_and_close(431)

    # --- parser callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # the next request on a kept-alive connection
            self._in_head = True
            self._head_bytes = 0
            self._arm(self._limits.header_timeout, self._head_timed_out)
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
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._arm(self._limits.body_timeout, self._body_timed_out)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()
