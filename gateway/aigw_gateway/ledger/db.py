"""The ledger database: one psycopg 3 async connection, used by one task at a time.

Rows are inserted in batches with one multi-row `INSERT ... SELECT FROM unnest(...)`
statement and `ON CONFLICT (request_id) DO NOTHING`, so an event delivered twice (a writer
killed between commit and acknowledgement, a settlement retried after a timeout) is one row.
Any failure closes the connection; the next call reconnects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

from .event import COLUMNS, UsageEvent
from .schema import migrate

log = logging.getLogger("aigw.ledger")

_TYPES = (
    "text", "text", "timestamptz", "text", "text", "text", "text", "text", "text", "text", "text", "int4",
    "bool", "text", "int8", "int8", "int8", "int8", "int8", "numeric", "float8", "int4",
)  # fmt: skip
INSERT_SQL = (
    f"INSERT INTO aigw_usage ({', '.join(COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"%s::{t}[]" for t in _TYPES)
    + ") ON CONFLICT (request_id) DO NOTHING"
)

DB_ERRORS = (psycopg.Error, OSError, asyncio.TimeoutError)


class LedgerDB:
    def __init__(self, url: str, *, connect_timeout: float = 5.0, statement_timeout_ms: int = 30_000) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self.statement_timeout_ms = statement_timeout_ms
        self._conn: psycopg.AsyncConnection | None = None
        self._migrated = False
        self._lock = asyncio.Lock()

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self._conn = await psycopg.AsyncConnection.connect(
            self.url, connect_timeout=max(int(self.connect_timeout), 1), autocommit=True,
            options=f"-c statement_timeout={self.statement_timeout_ms}",
        )  # fmt: skip
        if not self._migrated:
            await migrate(self._conn)
            self._migrated = True
        return self._conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def _failed(self) -> None:
        try:
            await self.close()
        except Exception:  # a broken connection may fail to close: it is gone either way
            pass

    async def run(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        """One statement (in its own transaction); rows it returns. Raises a DB_ERRORS member."""
        async with self._lock:
            try:
                conn = await self._connection()
                cur = await conn.execute(sql, params)
                return await cur.fetchall() if cur.description else []
            except DB_ERRORS:
                await self._failed()
                raise

    @property
    def busy(self) -> bool:
        """A statement (or a connection attempt) is in progress."""
        return self._lock.locked()

    async def ping(self) -> None:
        """Connect if needed (migrating at the first connection) and run `SELECT 1`."""
        await self.run("SELECT 1")

    async def ensure_schema(self) -> None:
        async with self._lock:
            try:
                await self._connection()
            except DB_ERRORS:
                await self._failed()
                raise

    async def insert(self, events: Sequence[UsageEvent]) -> int:
        """Insert (once each) and commit; the number of new rows."""
        if not events:
            return 0
        columns: list[list[Any]] = [[] for _ in COLUMNS]
        for event in events:
            for i, value in enumerate(event.row()):
                columns[i].append(value)
        async with self._lock:
            try:
                conn = await self._connection()
                async with conn.transaction():
                    cur = await conn.execute(INSERT_SQL, columns)
                    return cur.rowcount
            except DB_ERRORS:
                await self._failed()
                raise

    async def delete_older_than(self, days: int, batch: int = 10_000) -> int:
        """Retention: delete rows older than `days`, a batch at a time (short locks)."""
        total = 0
        while True:
            rows = await self.run(
                "WITH old AS (SELECT request_id FROM aigw_usage WHERE ts < now() - make_interval(days => %s) LIMIT %s) "
                "DELETE FROM aigw_usage u USING old WHERE u.request_id = old.request_id RETURNING 1",
                (days, batch),
            )
            total += len(rows)
            if len(rows) < batch:
                return total

    async def tenant_cost(self, namespace: str, gateway: str, tenant: str, start: datetime, end: datetime) -> Decimal:
        rows = await self.run(
            "SELECT coalesce(sum(cost_usd), 0) FROM aigw_usage "
            "WHERE namespace = %s AND gateway = %s AND tenant = %s AND ts >= %s AND ts < %s",
            (namespace, gateway, tenant, start, end),
        )
        return Decimal(rows[0][0])
