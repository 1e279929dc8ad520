"""Status models: conditions and the per-kind status documents.

Writers, one per field:
- the renderer (operator reconciler): `observedGeneration`, the `Accepted` condition and the
  AIGateway's rendered-config fields (`configGeneration`, `configHash`, `routes`, `tenants`);
- the status aggregator (operator timer over the pod reports): the live fields below and the
  `Ready` and `Degraded` conditions;
- kopf keeps its own progress under `status.kopf`, which is why status models allow unknown fields.

Condition vocabulary (type: reasons):
- Accepted: Accepted, PartiallyResolved (True); Invalid, SecretNotFound, RefNotFound, Conflict,
  NotSelected, TooLarge, ImageNotAllowed, SecretNotLabelled (False). On an AIGateway, Conflict also
  means an object the operator would write (`<gw>-config`, a Deployment...) exists and is not
  owned by it (left untouched).
- Ready: Serving (True: every reporting pod serves the current config generation);
  RolloutInProgress (some pods serve an older generation, or fewer pods are ready than wanted),
  NoReadyPods (no ready pod reports), NotServed (the object is in no rendered config) (False).
- Degraded: Healthy (False); CircuitOpen (a target's circuit breaker is open or half-open on a
  pod), HighErrorRate (the error ratio over the report window is above the threshold),
  BudgetExceeded (a tenant's spend reached its budget), ConfigRejected (a pod refuses the
  rendered config and keeps serving its last good one), PodsNotReporting (ready pods do not
  answer the report request) (True); NoReadyPods (Unknown: nothing to judge by).
- LedgerReady (AIGateway with spec.ledger only): Writing (True: the writer's heartbeat is fresh,
  PostgreSQL accepts its batches, the stream backlog is at or below spec.ledger.lagThreshold);
  WriterNotRunning (no fresh heartbeat from the writer), PostgresUnreachable (the writer's
  batches or probes fail), Lagging (the backlog is above the threshold, until it is back at half
  of it) (False); NoReadyPods,
  NotReported (no pod reports the ledger) (Unknown).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import Field

from .base import StatusModel

ConditionStatus = Literal["True", "False", "Unknown"]

# Condition types and reasons: a small, documented vocabulary.
ACCEPTED = "Accepted"
REASON_ACCEPTED = "Accepted"  # valid and served
REASON_INVALID = "Invalid"  # the spec can never work as written (permanent)
REASON_SECRET_NOT_FOUND = "SecretNotFound"  # waits for the Secret (temporary)
REASON_REF_NOT_FOUND = "RefNotFound"  # waits for a referenced aigw object (temporary)
REASON_PARTIALLY_RESOLVED = "PartiallyResolved"  # served, but some targets cannot be resolved yet
REASON_CONFLICT = "Conflict"  # a model name or key is claimed by another object (temporary)
REASON_NOT_SELECTED = "NotSelected"  # no AIGateway in the namespace selects the object
REASON_TOO_LARGE = "TooLarge"  # the rendered config does not fit a ConfigMap even compressed
REASON_IMAGE_NOT_ALLOWED = "ImageNotAllowed"  # AIGateway.spec.image is outside the operator's allow-list
REASON_SECRET_NOT_LABELLED = "SecretNotLabelled"  # the Secret lacks aigw.dev/secret=true (temporary)
TEMPORARY_REASONS = frozenset({REASON_SECRET_NOT_FOUND, REASON_REF_NOT_FOUND, REASON_CONFLICT, REASON_NOT_SELECTED,
                               REASON_SECRET_NOT_LABELLED})

READY = "Ready"
REASON_SERVING = "Serving"
REASON_ROLLOUT_IN_PROGRESS = "RolloutInProgress"
REASON_NO_READY_PODS = "NoReadyPods"
REASON_NOT_SERVED = "NotServed"

DEGRADED = "Degraded"
REASON_HEALTHY = "Healthy"
REASON_CIRCUIT_OPEN = "CircuitOpen"
REASON_HIGH_ERROR_RATE = "HighErrorRate"
REASON_BUDGET_EXCEEDED = "BudgetExceeded"
REASON_CONFIG_REJECTED = "ConfigRejected"
REASON_PODS_NOT_REPORTING = "PodsNotReporting"

LEDGER_READY = "LedgerReady"
REASON_WRITING = "Writing"
REASON_WRITER_NOT_RUNNING = "WriterNotRunning"
REASON_POSTGRES_UNREACHABLE = "PostgresUnreachable"
REASON_LAGGING = "Lagging"
REASON_NOT_REPORTED = "NotReported"

Health = Literal["Healthy", "Degraded", "Unhealthy", "Unknown"]
CircuitState = Literal["closed", "half-open", "open"]


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class Condition(StatusModel):
    """A Kubernetes-style condition."""

    type: str = Field(description="Condition type: Accepted, Ready or Degraded.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase reason from the documented vocabulary.")
    message: str = Field(default="", description="Human-readable detail.")
    observed_generation: int | None = Field(default=None, description="metadata.generation this condition is about.")
    last_transition_time: str | None = Field(default=None, description="When status last changed (RFC 3339).")


class ObjectStatus(StatusModel):
    """Status common to every aigw kind."""

    observed_generation: int | None = Field(default=None, description="metadata.generation last processed.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Accepted (rendered into a config), Ready (served by the pods), Degraded."
    )


class ServedStatus(ObjectStatus):
    """Live fields shared by the kinds the gateway pods serve."""

    gateway: str | None = Field(default=None, description="AIGateway whose pods serve the object.")
    served: str | None = Field(
        default=None, description='Pods serving the current config generation / pods reporting, e.g. "2/2".'
    )


class PodStatus(StatusModel):
    """What one gateway pod reports about itself."""

    name: str = Field(description="Pod name.")
    generation: int | None = Field(default=None, description="Config generation the pod serves; unset: none loaded.")
    config_error: str | None = Field(default=None, description="Why the pod refused the latest config, if it did.")


class LedgerStatus(StatusModel):
    """The usage ledger of an AIGateway, from the freshest pod report (LedgerReady says the verdict)."""

    backlog: int | None = Field(default=None, description="Usage events waiting in the stream for the writer.")
    lag_threshold: int | None = Field(default=None, description="LedgerReady is False (Lagging) above this backlog.")
    postgres: str | None = Field(default=None, description="ok, failing or unknown, as the writer last saw PostgreSQL.")
    writer: str | None = Field(default=None, description="The writer (consumer) whose heartbeat is fresh.")
    rows_written: int | None = Field(default=None, description="Rows the writer committed since it started.")


class AIGatewayStatus(ObjectStatus):
    config_generation: int | None = Field(default=None, description="Generation of the rendered gateway config.")
    config_hash: str | None = Field(default=None, description="Content hash of the rendered gateway config.")
    routes: int | None = Field(default=None, description="ModelRoutes served.")
    tenants: int | None = Field(default=None, description="TenantQuotas served.")
    replicas: int | None = Field(default=None, description="Gateway pods wanted.")
    ready_replicas: int | None = Field(default=None, description="Ready endpoints of the gateway Service.")
    reporting_pods: int | None = Field(default=None, description="Ready pods whose report the operator could read.")
    served: str | None = Field(
        default=None, description='Pods serving the current config generation / pods reporting, e.g. "2/2".'
    )
    endpoint: str | None = Field(default=None, description="In-cluster URL of the gateway Service.")
    pods: list[PodStatus] = Field(default_factory=list, description="Config generation served by each reporting pod.")
    ledger: LedgerStatus | None = Field(default=None, description="The usage ledger's backlog and writer (spec.ledger).")


class TargetStatus(StatusModel):
    """One upstream target of a route, over the pods' report window."""

    credential: str = Field(description="ProviderCredential of the target.")
    model: str = Field(description="Upstream model name.")
    health: Health = Field(default="Unknown", description="Healthy, Degraded, Unhealthy (circuit open on every pod) or Unknown.")
    circuit: CircuitState = Field(default="closed", description="Worst circuit breaker state across the pods.")
    open_pods: int = Field(default=0, description="Pods whose circuit to this target is open or half-open.")
    requests_per_minute: float = Field(default=0.0, description="Attempts per minute, all pods.")
    error_percent: float | None = Field(default=None, description="Failed attempts in percent; unset without traffic.")
    latency_p95_ms: float | None = Field(default=None, description="Highest per-pod p95 latency in ms.")


class ModelRouteStatus(ServedStatus):
    requests_per_minute: float | None = Field(default=None, description="Client requests per minute, all pods.")
    error_percent: float | None = Field(
        default=None, description="Client-visible failures in percent over the report window; unset without traffic."
    )
    latency_p95_ms: float | None = Field(default=None, description="Highest per-pod p95 latency in ms over the window.")
    targets: list[TargetStatus] = Field(default_factory=list, description="Health and circuit state per target.")
    cache_hit_ratio: float | None = Field(
        default=None, description="Response-cache hits per lookup (hits and misses), all pods; unset without lookups."
    )
    saved_usd: float | None = Field(
        default=None, alias="savedUSD", description="Provider cost avoided by cache hits, all pods, in USD."
    )


class ProviderCredentialStatus(ServedStatus):
    health: Health | None = Field(default=None, description="Across every route target that uses the credential.")
    routes: int | None = Field(default=None, description="Served routes with a target on this credential.")
    open_circuits: int | None = Field(default=None, description="Targets on this credential with an open circuit.")
    requests_per_minute: float | None = Field(default=None, description="Attempts per minute, all pods and routes.")
    error_percent: float | None = Field(default=None, description="Failed attempts in percent; unset without traffic.")


class TenantQuotaStatus(ServedStatus):
    requests_this_minute: int | None = Field(default=None, description="Requests counted in the current minute.")
    tokens_this_minute: int | None = Field(default=None, description="Tokens counted in the current minute.")
    spend_this_period: float | None = Field(default=None, description="USD spent in the current budget period.")
    budget_remaining: float | None = Field(default=None, description="USD left in the current budget period.")
    period_start: str | None = Field(default=None, description="Start of the current budget period (RFC 3339).")
    throttled_requests: int | None = Field(
        default=None, description="Requests refused by a rate limit or the budget, since the reporting pods started."
    )


class GuardrailPolicyStatus(ServedStatus):
    matches: dict[str, int] = Field(
        default_factory=dict, description='Matches per "detector/action", since the reporting pods started.'
    )
    total_matches: int | None = Field(default=None, description="Sum of matches.")


STATUS_MODELS: dict[str, type[ObjectStatus]] = {
    "AIGateway": AIGatewayStatus,
    "ModelRoute": ModelRouteStatus,
    "ProviderCredential": ProviderCredentialStatus,
    "TenantQuota": TenantQuotaStatus,
    "GuardrailPolicy": GuardrailPolicyStatus,
}


def merge_condition(existing: list[dict], new: Condition) -> list[dict]:
    """Replace the condition of the same type, keeping lastTransitionTime when status is unchanged."""
    out: list[dict] = []
    replaced = False
    for cond in existing:
        if cond.get("type") == new.type:
            keep_time = cond.get("status") == new.status and cond.get("lastTransitionTime")
            data = new.model_dump(by_alias=True, exclude_none=True)
            data["lastTransitionTime"] = keep_time or now_rfc3339()
            out.append(data)
            replaced = True
        else:
            out.append(cond)
    if not replaced:
        data = new.model_dump(by_alias=True, exclude_none=True)
        data["lastTransitionTime"] = now_rfc3339()
        out.append(data)
    return out
