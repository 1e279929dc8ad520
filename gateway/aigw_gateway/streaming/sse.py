"""Incremental parsers for streamed bodies: Server-Sent Events and newline-delimited JSON.

Upstream bytes arrive in arbitrary pieces (an event can be split anywhere, even inside a UTF-8
sequence); the parsers keep the unfinished tail and return only complete events.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UpstreamResponseTooLarge

# An SSE line (or NDJSON line) and an event carry one JSON chunk: even an inline image stays far
# below these. Past them the stream is refused instead of buffered without end.
MAX_LINE_BYTES = 8 * 1024 * 1024
MAX_EVENT_BYTES = 16 * 1024 * 1024


def line_too_long(limit: int) -> UpstreamResponseTooLarge:
    return UpstreamResponseTooLarge(f"the upstream stream sent a line longer than {limit} bytes")


@dataclass(slots=True)
class SSEEvent:
    data: str
    event: str | None = None
    id: str | None = None


class SSEParser:
    """text/event-stream per the WHATWG spec (comments, CRLF, multi-line data)."""

    __slots__ = ("_buf", "_data", "_event", "_id", "_size", "max_line", "max_event")

    def __init__(self, max_line: int = MAX_LINE_BYTES, max_event: int = MAX_EVENT_BYTES) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._size = 0  # bytes of data in the event being built
        self._event: str | None = None
        self._id: str | None = None
        self.max_line = max_line
        self.max_event = max_event

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        if b"\n" not in chunk:  # the tail never holds a newline: only the new piece can end a line
            self._buf += chunk
            if len(self._buf) > self.max_line:
                raise line_too_long(self.max_line)
            return events
        buf = self._buf + chunk
        start = 0
        while (nl := buf.find(b"\n", start)) >= 0:
            raw = buf[start:nl]
            start = nl + 1
            if len(raw) > self.max_line:
                raise line_too_long(self.max_line)
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            self._line(raw.decode("utf-8", errors="replace"), events)
        self._buf = buf[start:]
        if len(self._buf) > self.max_line:
            raise line_too_long(self.max_line)
        return events

    def flush(self) -> list[SSEEvent]:
        """At end of stream: a final event that lacked its blank line still counts."""
        events: list[SSEEvent] = []
        if self._buf:
            self._line(self._buf.decode("utf-8", errors="replace"), events)
            self._buf = b""
        self._line("", events)
        return events

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent("\n".join(self._data), self._event, self._id))
            self._data, self._event, self._size = [], None, 0
            return
        if line.startswith(":"):
            return
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._size += len(value)
            if self._size > self.max_event:
                raise UpstreamResponseTooLarge(f"the upstream stream sent an event larger than {self.max_event} bytes")
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            self._id = value


class NDJSONParser:
    """One JSON document per line (Ollama's native stream); returns the complete lines."""

    __slots__ = ("_buf", "max_line")

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._buf = b""
        self.max_line = max_line

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\n" not in chunk:
            self._buf += chunk
            if len(self._buf) > self.max_line:
                raise line_too_long(self.max_line)
            return []
        *lines, self._buf = (self._buf + chunk).split(b"\n")
        if len(self._buf) > self.max_line or any(len(line) > self.max_line for line in lines):
            raise line_too_long(self.max_line)
        return [line for line in lines if line.strip()]

    def flush(self) -> list[bytes]:
        tail, self._buf = self._buf, b""
        return [tail] if tail.strip() else []


def sse_event(data: bytes, event: str | None = None) -> bytes:
    """Encode one event; `data` must not contain newlines (JSON from orjson never does)."""
    if event:
        return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
    return b"data: " + data + b"\n\n"
