"""The ledger's reports -> LedgerReady and status.ledger (pure, a table of cases), and what a
status patch and the transition Events make of it."""

from __future__ import annotations

import pytest

from aigw_config.config import GatewayConfig
from aigw_config.report import LedgerReport, LedgerWriterReport, PodReport
from aigw_operator.status.ledger import LedgerPolicy, observe_ledger
from aigw_operator.status.observe import GatewayView, PodSample, observe_gateway
from aigw_operator.status.patch import status_update, transition_events

POLICY = LedgerPolicy(lag_threshold=100)


def writer(postgres: str = "ok", error: str | None = None, rows: int = 7) -> LedgerWriterReport:
    return LedgerWriterReport(consumer="gw-ledger-abc", age_seconds=1.0, postgres=postgres, error=error,
                              rows_written=rows)


def pod(ledger: LedgerReport | None, now: float = 100.0, name: str = "a") -> PodReport:
    return PodReport(pod=name, generation=1, now=now, ledger=ledger)


def stream(backlog: int | None, w: LedgerWriterReport | None = None, error: str | None = None) -> LedgerReport:
    return LedgerReport(backlog=backlog, max_length=1_000_000, writer=w, error=error)


def queue(backlog: int, w: LedgerWriterReport) -> LedgerReport:
    return LedgerReport(backlog=backlog, shared=False, writer=w)


REFUSED = "OperationalError: connection refused"

CASES = [
    # (case, policy, reports, status, reason)
    ("no ledger: no condition", None, [pod(stream(0, writer()))], None, None),
    ("no pod reports", POLICY, [], "Unknown", "NoReadyPods"),
    ("pods without the ledger", POLICY, [pod(None)], "Unknown", "NotReported"),
    ("stream unreadable", POLICY, [pod(stream(None, error="reading the stream failed (TimeoutError)"))],
     "Unknown", "NotReported"),
    ("healthy", POLICY, [pod(stream(3, writer()))], "True", "Writing"),
    ("at the threshold", POLICY, [pod(stream(100, writer()))], "True", "Writing"),
    ("above the threshold", POLICY, [pod(stream(101, writer()))], "False", "Lagging"),
    ("lagging stays lagging above half the threshold", LedgerPolicy(100, lagging=True), [pod(stream(51, writer()))],
     "False", "Lagging"),
    ("lagging clears at half the threshold", LedgerPolicy(100, lagging=True), [pod(stream(50, writer()))],
     "True", "Writing"),
    ("no heartbeat", POLICY, [pod(stream(0, None))], "False", "WriterNotRunning"),
    ("no heartbeat beats a backlog", POLICY, [pod(stream(5000, None))], "False", "WriterNotRunning"),
    ("postgres failing", POLICY, [pod(stream(0, writer("failing", REFUSED)))], "False", "PostgresUnreachable"),
    ("postgres failing beats lagging", POLICY, [pod(stream(5000, writer("failing", REFUSED)))],
     "False", "PostgresUnreachable"),
    ("writer not tried yet", POLICY, [pod(stream(0, writer("unknown")))], "Unknown", "NotReported"),
    ("the freshest pod is the truth", POLICY,
     [pod(stream(5000, writer()), now=90.0, name="a"), pod(stream(2, writer()), now=100.0, name="b")], "True", "Writing"),
    ("a pod that cannot read the stream is outvoted", POLICY,
     [pod(stream(None, error="x"), now=200.0, name="a"), pod(stream(2, writer()), now=100.0, name="b")], "True", "Writing"),
    ("no Redis: the pods' queues add up", POLICY,
     [pod(queue(60, writer()), name="a"), pod(queue(60, writer()), name="b")], "False", "Lagging"),
    ("no Redis: one pod failing", POLICY,
     [pod(queue(0, writer()), name="a"), pod(queue(0, writer("failing", REFUSED)), name="b")],
     "False", "PostgresUnreachable"),
]


@pytest.mark.parametrize(("case", "policy", "reports", "status", "reason"), CASES, ids=[c[0] for c in CASES])
def test_ledger_ready(case, policy, reports, status, reason):
    condition, fields = observe_ledger("gw", policy, reports)
    if status is None:
        assert condition is None and fields is None
        return
    assert (condition.type, condition.status, condition.reason) == ("LedgerReady", status, reason), condition.message


def test_messages_name_the_failure_and_the_writer_but_no_counts():
    condition, fields = observe_ledger("gw", POLICY, [pod(stream(40, writer("failing", REFUSED)))])
    assert REFUSED in condition.message and "stream" in condition.message
    assert fields == {"backlog": 40, "lagThreshold": 100, "postgres": "failing", "writer": "gw-ledger-abc",
                      "rowsWritten": 7}
    missing, _ = observe_ledger("edge", POLICY, [pod(stream(0, None))])
    assert "edge-ledger" in missing.message
    busy, _ = observe_ledger("gw", POLICY, [pod(stream(150, writer()))])
    busier, _ = observe_ledger("gw", POLICY, [pod(stream(950, writer()))])
    assert busy.message == busier.message  # a moving backlog does not rewrite the condition


def gateway_view(*reports: PodReport, ledger: LedgerPolicy | None = POLICY) -> GatewayView:
    return GatewayView(name="gw", replicas=1, endpoint="http://gw.ns.svc:8080", config=GatewayConfig().sealed(1),
                       ready_pods=tuple(r.pod for r in reports), pods=tuple(PodSample(r.pod, r) for r in reports),
                       ledger=ledger)


def test_gateway_status_carries_the_condition_and_drops_it_with_the_ledger():
    obs = observe_gateway(gateway_view(pod(stream(3, writer()))))
    patch, significant = status_update({}, obs, 1)
    conditions = {c["type"]: c for c in patch["status"]["conditions"]}
    assert conditions["LedgerReady"]["reason"] == "Writing" and significant
    assert patch["status"]["ledger"]["backlog"] == 3
    stored = patch["status"]

    # A moving backlog is a rate: written, but not significant (held back by the write interval).
    moved, significant = status_update(stored, observe_gateway(gateway_view(pod(stream(9, writer(rows=20))))), 1)
    assert moved is not None and not significant

    # PostgreSQL failing: significant, and a Warning Event; recovering: a Normal one.
    failing = observe_gateway(gateway_view(pod(stream(9, writer("failing", REFUSED)))))
    patch, significant = status_update(stored, failing, 1)
    assert significant
    (event,) = transition_events("AIGateway", stored, failing)
    assert (event.reason, event.type) == ("PostgresUnreachable", "Warning")
    assert transition_events("AIGateway", patch["status"], failing) == []  # said once
    recovered = observe_gateway(gateway_view(pod(stream(0, writer()))))
    (event,) = transition_events("AIGateway", patch["status"], recovered)
    assert (event.reason, event.type) == ("LedgerWriting", "Normal")

    # spec.ledger removed: the condition and status.ledger go.
    gone, _ = status_update(stored, observe_gateway(gateway_view(pod(None), ledger=None)), 1)
    assert "LedgerReady" not in {c["type"] for c in gone["status"]["conditions"]}
    assert gone["status"]["ledger"] is None
