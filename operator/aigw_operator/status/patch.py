"""Pure: observations -> status merge patches (only what changed) and transition Events.

A patch is *significant* when anything but a rate moves (a condition, SERVED, a circuit, a
pod's generation): those are written on the next round. Rate-only changes (requests per
minute, error ratio, p95, usage counters) are written at most every `min_interval` per
object by the caller, so busy traffic does not turn into a stream of writes.

Events are derived from the stored status, not from memory: an operator that takes over from
another one does not repeat the Events its predecessor already posted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigw_config.status import (
    DEGRADED,
    LEDGER_READY,
    REASON_BUDGET_EXCEEDED,
    REASON_CONFIG_REJECTED,
    REASON_HEALTHY,
    REASON_WRITING,
    merge_condition,
)

from .observe import Observation

RATE_FIELDS = frozenset({
    "requestsPerMinute", "errorPercent", "latencyP95Ms", "requestsThisMinute", "tokensThisMinute",
    "spendThisPeriod", "budgetRemaining", "throttledRequests", "matches", "totalMatches", "periodStart",
    "backlog", "rowsWritten",  # status.ledger of an AIGateway
})


@dataclass(frozen=True)
class EventSpec:
    """A Kubernetes Event to post about one object."""

    reason: str
    message: str
    type: str = "Normal"  # Normal | Warning


def _strip_rates(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_rates(v) for k, v in value.items() if k not in RATE_FIELDS}
    if isinstance(value, list):
        return [_strip_rates(v) for v in value]
    return value


def _without_time(conditions: list[dict]) -> list[dict]:
    return sorted(({k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conditions),
                  key=lambda c: c.get("type", ""))


def status_update(current: dict | None, obs: Observation, generation: int) -> tuple[dict | None, bool]:
    """(merge patch for /status or None when nothing changes, whether the change is significant)."""
    current = current or {}
    changed: dict[str, Any] = {}
    significant = False
    for key, value in obs.fields.items():
        old = current.get(key)
        if value is None and old is None:
            continue
        if old != value:
            changed[key] = value
            if key not in RATE_FIELDS and _strip_rates(old) != _strip_rates(value):
                significant = True
    old_conditions = list(current.get("conditions") or [])
    conditions = [c for c in old_conditions if c.get("type") not in obs.drop_conditions]
    for cond in obs.conditions:
        conditions = merge_condition(conditions, cond.model_copy(update={"observed_generation": generation}))
    if _without_time(conditions) != _without_time(old_conditions):
        changed["conditions"] = conditions
        significant = True
    return ({"status": changed} if changed else None), significant


def _condition(status: dict | None, type_: str) -> dict:
    return next((c for c in (status or {}).get("conditions") or [] if c.get("type") == type_), {})


def _new_condition(obs: Observation, type_: str) -> dict:
    cond = next((c for c in obs.conditions if c.type == type_), None)
    return cond.model_dump(by_alias=True, exclude_none=True) if cond else {}


def transition_events(kind: str, current: dict | None, obs: Observation) -> list[EventSpec]:
    """Events for what changed between the stored status and the new observation."""
    events: list[EventSpec] = []
    if kind == "ModelRoute":
        before = {(t.get("credential"), t.get("model")): t.get("circuit", "closed")
                  for t in (current or {}).get("targets") or []}
        for target in obs.fields.get("targets") or []:
            key = (target["credential"], target["model"])
            was, now = before.get(key, "closed"), target["circuit"]
            where = f"{target['credential']}/{target['model']}"
            if was == "closed" and now != "closed":
                events.append(EventSpec("CircuitOpened", f"circuit to {where} is {now} on {target['openPods']} "
                                        f"pod(s); requests fall back to other targets", "Warning"))
            elif was != "closed" and now == "closed":
                events.append(EventSpec("CircuitClosed", f"circuit to {where} is closed again on every pod"))
    old_degraded, new_degraded = _condition(current, DEGRADED), _new_condition(obs, DEGRADED)
    old_reason, new_reason = old_degraded.get("reason"), new_degraded.get("reason")
    if kind == "TenantQuota":
        if new_reason == REASON_BUDGET_EXCEEDED and old_reason != REASON_BUDGET_EXCEEDED:
            events.append(EventSpec(REASON_BUDGET_EXCEEDED, new_degraded.get("message", ""), "Warning"))
        elif old_reason == REASON_BUDGET_EXCEEDED and new_reason == REASON_HEALTHY:
            events.append(EventSpec("BudgetAvailable", "spend is below the budget again (new period or raised budget)"))
    if kind == "AIGateway" and new_reason == REASON_CONFIG_REJECTED and old_reason != REASON_CONFIG_REJECTED:
        events.append(EventSpec(REASON_CONFIG_REJECTED, new_degraded.get("message", ""), "Warning"))
    if kind == "AIGateway":
        events.extend(_ledger_events(_condition(current, LEDGER_READY), _new_condition(obs, LEDGER_READY)))
    return events


def _ledger_events(old: dict, new: dict) -> list[EventSpec]:
    """A Warning when the ledger stops being written (or why changes), one when it recovers."""
    if new.get("status") == "False" and new.get("reason") != old.get("reason"):
        return [EventSpec(new["reason"], new.get("message", ""), "Warning")]
    if new.get("reason") == REASON_WRITING and old.get("status") == "False":
        return [EventSpec("LedgerWriting", new.get("message", ""))]
    return []


def event_object(involved: dict[str, Any], spec: EventSpec, now: str, instance: str = "") -> dict[str, Any]:
    """A core/v1 Event about `involved` (an object with apiVersion, kind and metadata)."""
    meta = involved["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": involved["apiVersion"], "kind": involved["kind"], "name": meta["name"],
            "namespace": meta["namespace"], "uid": meta.get("uid", ""),
        },
        "reason": spec.reason,
        "message": spec.message[:1024],
        "type": spec.type,
        "source": {"component": "aigw-operator"},
        "reportingComponent": "aigw.dev/operator",
        "reportingInstance": instance[:128],
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
