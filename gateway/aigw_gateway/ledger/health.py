"""The ledger's health: how the writer tells the operator that usage rows are being written.

The writer publishes a heartbeat, a small hash next to its stream (`<stream>:writer`), every
few seconds with a TTL of several periods: a writer that died or lost Redis lets it expire.
While it has no batch to insert it probes PostgreSQL (`SELECT 1`), so an idle writer notices
an outage too. The gateway pods read the heartbeat and the stream's length into their report
(`LedgerReport`); the operator turns that into the AIGateway's `LedgerReady` condition.

A heartbeat never holds a URL, a user or a password: a PostgreSQL failure is described by its
kind only (the exception's class, its SQLSTATE, and a phrase from a fixed list).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from aigw_config.report import LedgerWriterReport

HEARTBEAT_INTERVAL = 5.0  # seconds between heartbeats (and, while idle, PostgreSQL probes)
HEARTBEAT_TTL_PERIODS = 4  # a heartbeat older than this many periods has expired

# Phrases of libpq / psycopg connection errors worth naming; anything else is named by its class.
_KNOWN_FAILURES = (
    ("connection refused", "connection refused"),
    ("timeout expired", "connection timeout"),
    ("timed out", "connection timeout"),
    ("password authentication failed", "authentication failed"),
    ("no pg_hba.conf entry", "connection not allowed by pg_hba.conf"),
    ("does not exist", "does not exist"),
    ("shutting down", "server shutting down"),
    ("starting up", "server starting up"),
    ("could not translate host name", "host name not resolved"),
    ("name or service not known", "host name not resolved"),
    ("no route to host", "no route to host"),
    ("server closed the connection", "server closed the connection"),
    ("terminating connection", "connection terminated by the server"),
    ("too many connections", "too many connections"),
    ("ssl", "TLS failure"),
)


def heartbeat_key(stream: str) -> str:
    """The writer's heartbeat hash, next to the stream it consumes."""
    return f"{stream}:writer"


def describe_db_error(exc: BaseException) -> str:
    """A PostgreSQL failure by its kind, e.g. `OperationalError: connection refused`.

    Built from a fixed vocabulary, never from the error's text: libpq messages name the host,
    the user and the database, and a status condition is readable by anyone who can get the
    AIGateway."""
    kind = type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None)
    text = str(exc).lower()
    phrase = next((said for needle, said in _KNOWN_FAILURES if needle in text), None)
    if isinstance(exc, TimeoutError) and phrase is None:
        phrase = "timeout"
    parts = [kind + (f": {phrase}" if phrase else "")]
    if isinstance(sqlstate, str) and sqlstate.isalnum() and len(sqlstate) == 5:
        parts.append(f"SQLSTATE {sqlstate}")
    return ", ".join(parts)


class PostgresHealth:
    """What the writer last saw of PostgreSQL (updated on every insert, probe and failure)."""

    def __init__(self) -> None:
        self.state = "unknown"  # ok | failing | unknown (not tried yet)
        self.error: str | None = None
        self.failing_since: float | None = None  # wall clock
        self.last_contact = float("-inf")  # monotonic: the last insert or probe, whatever its outcome

    def succeeded(self) -> None:
        self.state, self.error, self.failing_since = "ok", None, None
        self.last_contact = time.monotonic()

    def failed(self, exc: BaseException) -> None:
        self.state, self.error = "failing", describe_db_error(exc)
        if self.failing_since is None:
            self.failing_since = time.time()
        self.last_contact = time.monotonic()

    def due_for_probe(self, interval: float) -> bool:
        return time.monotonic() - self.last_contact >= interval


def heartbeat_fields(consumer: str, health: PostgresHealth, last_commit: float, rows_written: int,
                     now: float | None = None) -> dict[str, str]:
    """The heartbeat hash (every field always written, "" for none: one HSET replaces it all)."""
    return {
        "consumer": consumer,
        "at": repr(time.time() if now is None else now),
        "postgres": health.state,
        "error": health.error or "",
        "failing_since": repr(health.failing_since) if health.failing_since is not None else "",
        "last_commit": repr(last_commit) if last_commit else "",
        "rows": str(rows_written),
    }


def _text(data: Mapping[bytes | str, bytes | str], key: str) -> str:
    value = data.get(key.encode(), data.get(key))  # type: ignore[call-overload]
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _age(now: float, at: str) -> float | None:
    try:
        return max(round(now - float(at), 1), 0.0) if at else None
    except ValueError:
        return None


def writer_report(data: Mapping[bytes | str, bytes | str], now: float) -> LedgerWriterReport | None:
    """A heartbeat hash read back (None: there is none, or it is not one)."""
    age = _age(now, _text(data, "at"))
    if age is None:
        return None
    state = _text(data, "postgres")
    try:
        rows = int(_text(data, "rows") or 0)
    except ValueError:
        rows = 0
    return LedgerWriterReport(
        consumer=_text(data, "consumer")[:253],
        age_seconds=age,
        postgres=state if state in ("ok", "failing", "unknown") else "unknown",
        error=_text(data, "error")[:200] or None,
        failing_seconds=_age(now, _text(data, "failing_since")),
        last_commit_age_seconds=_age(now, _text(data, "last_commit")),
        rows_written=rows,
    )
