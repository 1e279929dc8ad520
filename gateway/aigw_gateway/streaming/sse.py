"""Incremental parsers for streamed bodies: Server-Sent Events and newline-delimited JSON.

Upstream bytes arrive in arbitrary pieces (an event can be split anywhere, even inside a UTF-8
sequence); the parsers keep the unfinished tail and return only complete events.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    data: str
    event: str | None = None
    id: str | None = None


class SSEParser:
    """text/event-stream per the WHATWG spec (comments, CRLF, multi-line data)."""

    __slots__ = ("_buf", "_data", "_event", "_id")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buf += chunk
        events: list[SSEEvent] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                break
            raw, self._buf = self._buf[:nl], self._buf[nl + 1:]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            self._line(raw.decode("utf-8", errors="replace"), events)
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
            self._data, self._event = [], None
            return
        if line.startswith(":"):
            return
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            self._id = value


class NDJSONParser:
    """One JSON document per line (Ollama's native stream); returns the complete lines."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        return [line for line in lines if line.strip()]

    def flush(self) -> list[bytes]:
        tail, self._buf = self._buf, b""
        return [tail] if tail.strip() else []


def sse_event(data: bytes, event: str | None = None) -> bytes:
    """Encode one event; `data` must not contain newlines (JSON from orjson never does)."""
    if event:
        return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
    return b"data: " + data + b"\n\n"
