"""Pure: the gateway pods' ledger reports -> the AIGateway's `LedgerReady` condition and `status.ledger`.

With Redis the pods all read the same stream and the same writer heartbeat, so the freshest
report is the truth (as for shared tenant usage). Without Redis each pod writes its own queue to
PostgreSQL: the backlogs add up and any pod that cannot write makes the ledger not ready.

Verdicts, first match wins (the root cause before its symptom: a writer that cannot reach
PostgreSQL also lets the backlog grow):
- no pod reports                    -> Unknown  NoReadyPods / NotReported
- no fresh writer heartbeat         -> False    WriterNotRunning
- the writer's PostgreSQL fails     -> False    PostgresUnreachable
- backlog > spec.ledger.lagThreshold -> False   Lagging (until it is back at half the threshold)
- PostgreSQL not tried yet          -> Unknown  NotReported
- otherwise                         -> True     Writing

Messages carry no counts that move with traffic (a message change is a status write); the
backlog is in `status.ledger.backlog`, written like the other rates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aigw_config.report import LedgerReport, LedgerWriterReport, PodReport
from aigw_config.status import (
    LEDGER_READY,
    REASON_LAGGING,
    REASON_NO_READY_PODS,
    REASON_NOT_REPORTED,
    REASON_POSTGRES_UNREACHABLE,
    REASON_WRITER_NOT_RUNNING,
    REASON_WRITING,
    Condition,
)

from ..ledger_workload import ledger_name


@dataclass(frozen=True)
class LedgerPolicy:
    """What the AIGateway's spec.ledger says about judging the ledger."""

    lag_threshold: int = 10_000
    lagging: bool = False  # the stored verdict is Lagging: it clears only at half the threshold

    @property
    def lag_limit(self) -> int:
        """The backlog above which the ledger is Lagging (hysteresis: a writer that just keeps up
        near the threshold does not flip the condition, and post an Event, every round)."""
        return self.lag_threshold // 2 if self.lagging else self.lag_threshold


def _cond(status: str, reason: str, message: str) -> Condition:
    return Condition(type=LEDGER_READY, status=status, reason=reason, message=message)


def _fields(policy: LedgerPolicy, backlog: int | None, writers: Sequence[LedgerWriterReport]) -> dict[str, Any]:
    worst = next((w for w in writers if w.postgres == "failing"), writers[0] if writers else None)
    return {
        "backlog": backlog,
        "lagThreshold": policy.lag_threshold,
        "postgres": worst.postgres if worst else None,
        "writer": (worst.consumer or None) if worst else None,
        "rowsWritten": sum(w.rows_written for w in writers) if writers else None,
    }


def observe_ledger(gateway: str, policy: LedgerPolicy | None,
                   reports: Sequence[PodReport]) -> tuple[Condition | None, dict[str, Any] | None]:
    """(LedgerReady, status.ledger) of one AIGateway; (None, None): it has no ledger."""
    if policy is None:
        return None, None
    if not reports:
        return _cond("Unknown", REASON_NO_READY_PODS, f"no ready pod of AIGateway {gateway} reports"), None
    ledgers: list[tuple[PodReport, LedgerReport]] = [(r, r.ledger) for r in reports if r.ledger is not None]
    if not ledgers:
        return _cond("Unknown", REASON_NOT_REPORTED,
                     "no gateway pod reports the ledger (pods without the ledger URL, or an older image)"), None
    if any(ledger.shared for _, ledger in ledgers):
        readable = [(r, ledger) for r, ledger in ledgers if ledger.shared and ledger.backlog is not None]
        if not readable:
            errors = sorted({ledger.error or "unknown error" for _, ledger in ledgers})
            return _cond("Unknown", REASON_NOT_REPORTED,
                         f"the gateway pods cannot read the ledger stream: {'; '.join(errors)}"), None
        latest = max(readable, key=lambda pair: pair[0].now)[1]
        backlog, writers = latest.backlog, [latest.writer] if latest.writer else []
        fields = _fields(policy, backlog, writers)
        if latest.writer is None:
            return _cond("False", REASON_WRITER_NOT_RUNNING,
                         f"no heartbeat from the ledger writer (Deployment {ledger_name(gateway)}): it is not "
                         "running or cannot reach Redis; usage events wait in the stream"), fields
    else:
        backlog = sum(ledger.backlog or 0 for _, ledger in ledgers)
        writers = [ledger.writer for _, ledger in ledgers if ledger.writer is not None]
        fields = _fields(policy, backlog, writers)
    failing = sorted({w.error or "unknown error" for w in writers if w.postgres == "failing"})
    if failing:
        where = "the stream" if any(ledger.shared for _, ledger in ledgers) else "the pods' queues"
        return _cond("False", REASON_POSTGRES_UNREACHABLE,
                     f"the ledger cannot write PostgreSQL ({'; '.join(failing)}); usage events wait in {where}"), fields
    assert backlog is not None
    if backlog > policy.lag_limit:
        return _cond("False", REASON_LAGGING,
                     f"more than {policy.lag_threshold} usage events wait for the ledger writer "
                     "(spec.ledger.lagThreshold)"), fields
    if not writers or all(w.postgres == "unknown" for w in writers):
        return _cond("Unknown", REASON_NOT_REPORTED, "the ledger writer has not reached PostgreSQL yet"), fields
    return _cond("True", REASON_WRITING,
                 f"usage rows are committed to PostgreSQL; the backlog is within {policy.lag_threshold} events"), fields
