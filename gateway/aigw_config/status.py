"""Status models: conditions and the per-kind status documents.

The operator is the one writer of `observedGeneration` and `conditions`. Later fields (served
generation per pod, rates, spend) are written by the status aggregator; kopf keeps its own
progress under `status.kopf`, which is why status models allow unknown fields.
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
TEMPORARY_REASONS = frozenset({REASON_SECRET_NOT_FOUND, REASON_REF_NOT_FOUND, REASON_CONFLICT, REASON_NOT_SELECTED})


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class Condition(StatusModel):
    """A Kubernetes-style condition."""

    type: str = Field(description="Condition type, e.g. Accepted.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase reason from the documented vocabulary.")
    message: str = Field(default="", description="Human-readable detail.")
    observed_generation: int | None = Field(default=None, description="metadata.generation this condition is about.")
    last_transition_time: str | None = Field(default=None, description="When status last changed (RFC 3339).")


class ObjectStatus(StatusModel):
    """Status common to every aigw kind."""

    observed_generation: int | None = Field(default=None, description="metadata.generation last processed.")
    conditions: list[Condition] = Field(default_factory=list, description="Current conditions.")


class AIGatewayStatus(ObjectStatus):
    config_generation: int | None = Field(default=None, description="Generation of the rendered gateway config.")
    config_hash: str | None = Field(default=None, description="Content hash of the rendered gateway config.")
    routes: int | None = Field(default=None, description="ModelRoutes served.")
    tenants: int | None = Field(default=None, description="TenantQuotas served.")


class ModelRouteStatus(ObjectStatus):
    pass


class ProviderCredentialStatus(ObjectStatus):
    pass


class TenantQuotaStatus(ObjectStatus):
    pass


class GuardrailPolicyStatus(ObjectStatus):
    pass


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
