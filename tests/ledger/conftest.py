"""Fixtures of the ledger tests: a real PostgreSQL (skipped with one line when absent)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
from psycopg.rows import dict_row
import pytest

from tests.ledger.postgres import PostgresNotFound, PostgresServer


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except PostgresNotFound as exc:
        pytest.skip(str(exc))
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def ledger_url(postgres_server: PostgresServer) -> str:
    """A fresh database per test (the server is shared by the session)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_server.url.rsplit("/", 1)[0] + "/" + name


def rows(url: str, where: str = "TRUE", params: tuple = ()) -> list[dict]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT * FROM aigw_usage WHERE {where} ORDER BY ts", params)
        return cur.fetchall()
