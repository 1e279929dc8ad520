"""LedgerReady from real parts: a gateway process (`--no-ledger-writer`) and an `aigw ledger` writer
process on real Redis and PostgreSQL; the gateway's /internal/report read as the operator reads it,
and the operator's derivation applied to it. Writing -> the writer frozen while requests arrive ->
Lagging -> thawed -> Writing -> PostgreSQL stopped -> PostgresUnreachable -> started -> Writing;
no writer at all -> WriterNotRunning."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from aigw_config.report import PodReport
from aigw_operator.status.ledger import LedgerPolicy, observe_ledger
from tests.ledger.support import KEY_A, chat, write_config
from tests.ledger.test_outages import start_writer, stop

TOKEN = "rt-ledger"
POLICY = LedgerPolicy(lag_threshold=3)


def verdict(gw) -> tuple[str, str, PodReport]:
    resp = httpx.get(gw.ops_url + "/internal/report", headers={"authorization": f"Bearer {TOKEN}"}, timeout=5)
    resp.raise_for_status()
    report = PodReport.model_validate(resp.json())
    condition, _ = observe_ledger("local", POLICY, [report])
    assert condition is not None
    return condition.status, condition.reason, report


def wait_verdict(gw, reason: str, timeout: float = 45.0, backlog: int | None = None) -> PodReport:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        status, got, report = verdict(gw)
        if got == reason and (backlog is None or report.ledger.backlog == backlog):
            return report
        seen = (status, got, report.ledger)
        time.sleep(0.2)
    raise AssertionError(f"LedgerReady never became {reason} in {timeout}s; last: {seen}")


@pytest.fixture
def gateway(tmp_path, fake_openai, redis_server, ledger_url, start_gateway):
    redis_server.command("FLUSHALL")
    crs = write_config(tmp_path / "crs.yaml", fake_openai.base_url)
    gw = start_gateway("-f", str(crs), "--redis-url", redis_server.url, "--ledger-url", ledger_url,
                       "--no-ledger-writer", "--report-token", TOKEN, wait=False)
    gw.wait_ready(timeout=60)
    return gw


def test_ledger_ready_follows_the_writer_and_postgres(gateway, postgres_server, redis_server, ledger_url, tmp_path):
    status, reason, report = verdict(gateway)
    assert (status, reason) == ("False", "WriterNotRunning") and report.ledger.backlog == 0
    writer = start_writer(redis_server.url, ledger_url, tmp_path / "writer.log", "w1")
    try:
        ready = wait_verdict(gateway, "Writing")
        assert ready.ledger.writer.consumer == "w1" and ready.ledger.writer.postgres == "ok"

        # A writer that stops consuming (its heartbeat still fresh for a few periods): the backlog grows.
        writer.send_signal(signal.SIGSTOP)
        try:
            with httpx.Client(base_url=gateway.url, timeout=30) as client:
                for i in range(POLICY.lag_threshold + 2):
                    assert chat(client, KEY_A, f"request {i}").status_code == 200
            # Every request's event, and only those, waits in the stream.
            wait_verdict(gateway, "Lagging", timeout=10, backlog=POLICY.lag_threshold + 2)
        finally:
            writer.send_signal(signal.SIGCONT)
        wait_verdict(gateway, "Writing", backlog=0)

        postgres_server.stop()
        try:
            down = wait_verdict(gateway, "PostgresUnreachable")
            condition, _ = observe_ledger("local", POLICY, [down])
            assert "OperationalError" in condition.message or "AdminShutdown" in condition.message
            assert ledger_url not in condition.message and str(postgres_server.port) not in condition.message
        finally:
            postgres_server.start()
        wait_verdict(gateway, "Writing")
    finally:
        stop(writer)


def test_without_redis_each_pod_reports_its_own_queue_and_postgres(tmp_path, fake_openai, ledger_url, start_gateway,
                                                                    postgres_server):
    crs = write_config(tmp_path / "crs.yaml", fake_openai.base_url)
    gw = start_gateway("-f", str(crs), "--ledger-url", ledger_url, "--report-token", TOKEN, wait=False)
    gw.wait_ready(timeout=60)
    with httpx.Client(base_url=gw.url, timeout=30) as client:
        assert chat(client, KEY_A, "one two").status_code == 200
    deadline = time.monotonic() + 30
    while (report := verdict(gw)[2]).ledger.writer.rows_written < 1:
        assert time.monotonic() < deadline, report.ledger
        time.sleep(0.1)
    assert report.ledger.shared is False and report.ledger.backlog == 0
    assert verdict(gw)[:2] == ("True", "Writing")
    postgres_server.stop()
    try:
        down = wait_verdict(gw, "PostgresUnreachable", timeout=30)  # an idle pod probes PostgreSQL
        assert down.ledger.writer.error
    finally:
        postgres_server.start()
    wait_verdict(gw, "Writing", timeout=30)
