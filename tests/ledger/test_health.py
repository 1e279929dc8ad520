"""The writer's heartbeat against real Redis and PostgreSQL: PostgreSQL stopped -> the heartbeat
says `failing` with the error's kind (no URL, no password); started -> `ok` again; the writer
gone -> the heartbeat expires."""

from __future__ import annotations

import asyncio
import time
import uuid

import psycopg
import redis.asyncio as aioredis

from aigw_gateway.ledger import LedgerDB, StreamWriter
from aigw_gateway.ledger.health import describe_db_error, heartbeat_key, writer_report
from tests.gateway.harness import free_port


async def _until(what: str, predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        await asyncio.sleep(0.1)


async def test_heartbeat_follows_postgres_down_and_up(redis_server, postgres_server, ledger_url):
    client = aioredis.Redis.from_url(redis_server.url)
    stream = f"aigw:ledger:test:{uuid.uuid4().hex[:8]}"
    key = heartbeat_key(stream)
    writer = StreamWriter(client, LedgerDB(ledger_url, connect_timeout=2.0), stream, consumer="w1",
                          heartbeat_interval=0.2)
    task = asyncio.create_task(writer.run())

    async def heartbeat(state: str, error: str | None = None):
        report = writer_report(await client.hgetall(key), time.time())
        if report is None or report.postgres != state or (error and error not in (report.error or "")):
            return None
        return report

    try:
        ok = await _until("heartbeat ok", lambda: heartbeat("ok"))
        assert ok.consumer == "w1" and ok.error is None and ok.age_seconds < 5
        assert 0 < await client.ttl(key) <= 1  # a few periods: a dead writer's heartbeat goes

        postgres_server.stop()
        try:
            # First the open connection is terminated (AdminShutdown), then new ones are refused.
            failing = await _until("heartbeat failing", lambda: heartbeat("failing", "connection refused"))
        finally:
            postgres_server.start()
        assert failing.error == "OperationalError: connection refused", failing.error
        assert str(postgres_server.port) not in failing.error and "postgres" not in failing.error.lower()
        assert failing.failing_seconds is not None

        await _until("heartbeat ok again", lambda: heartbeat("ok"))
    finally:
        writer.stop.set()
        await asyncio.wait_for(task, 10)
        await writer.db.close()

    async def expired() -> bool:
        return not await client.exists(key)

    await _until("heartbeat expired", expired)
    await client.aclose()


async def test_an_error_is_described_by_its_kind_never_its_text():
    port = free_port()  # nothing listens there
    url = f"postgresql://ledger-user:s3cret-pw@127.0.0.1:{port}/billing"
    try:
        await psycopg.AsyncConnection.connect(url, connect_timeout=2)
    except psycopg.OperationalError as exc:
        error = exc
    text = describe_db_error(error)
    assert text == "OperationalError: connection refused", text
    for secret in ("s3cret-pw", "ledger-user", "billing", str(port), "127.0.0.1"):
        assert secret not in text
    assert describe_db_error(psycopg.errors.InsufficientPrivilege("permission denied for table aigw_usage")) \
        .startswith("InsufficientPrivilege")
    assert describe_db_error(TimeoutError()) == "TimeoutError: timeout"
