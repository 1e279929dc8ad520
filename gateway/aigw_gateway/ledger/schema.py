"""The ledger's schema: versioned, forward-only migrations the writer applies at start.

Each migration runs once, in order, in one transaction with the version it brings; a
transaction-scoped advisory lock makes two writers starting together take turns. Migrations
are never edited once released: a change is a new migration.
"""

from __future__ import annotations

import psycopg

LOCK_ID = 0x61696777  # "aigw": pg_advisory_xact_lock key shared by every aigw writer

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, """
CREATE TABLE aigw_usage (
    request_id          text PRIMARY KEY,
    client_request_id   text,
    ts                  timestamptz NOT NULL,
    namespace           text NOT NULL,
    gateway             text NOT NULL,
    tenant              text NOT NULL,
    route               text NOT NULL,
    target              text NOT NULL,
    provider            text NOT NULL,
    model               text NOT NULL,
    api                 text NOT NULL,
    status              integer NOT NULL,
    stream              boolean NOT NULL,
    cache               text,
    input_tokens        bigint NOT NULL,
    output_tokens       bigint NOT NULL,
    cache_read_tokens   bigint NOT NULL,
    cache_write_tokens  bigint NOT NULL,
    reasoning_tokens    bigint NOT NULL,
    cost_usd            numeric(20, 9) NOT NULL,
    latency_ms          double precision NOT NULL,
    attempts            integer NOT NULL
);
CREATE INDEX aigw_usage_scope_ts ON aigw_usage (namespace, gateway, tenant, ts);
CREATE INDEX aigw_usage_ts ON aigw_usage (ts);
"""),
)

LATEST = MIGRATIONS[-1][0]


async def migrate(conn: psycopg.AsyncConnection) -> int:
    """Bring the database to the latest version; returns it. Idempotent."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS aigw_schema_version "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT coalesce(max(version), 0) FROM aigw_schema_version")
        current = (await cur.fetchone())[0]
        if current > LATEST:
            raise RuntimeError(f"the ledger database is at schema version {current}, newer than this aigw ({LATEST})")
        for version, sql in MIGRATIONS:
            if version > current:
                await conn.execute(sql)
                await conn.execute("INSERT INTO aigw_schema_version (version) VALUES (%s)", (version,))
    return LATEST
