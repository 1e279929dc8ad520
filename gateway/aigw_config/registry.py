"""The five kinds: names, short names and printer columns (what `kubectl get` shows)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .kinds import SPEC_MODELS, SpecModel
from .status import STATUS_MODELS, ObjectStatus

ACCEPTED_COLUMN = {
    "name": "Accepted",
    "type": "string",
    "jsonPath": '.status.conditions[?(@.type=="Accepted")].status',
    "description": "Whether the object is valid and served.",
}
REASON_COLUMN = {
    "name": "Reason",
    "type": "string",
    "priority": 1,
    "jsonPath": '.status.conditions[?(@.type=="Accepted")].reason',
    "description": "Reason of the Accepted condition.",
}
AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    description: str
    columns: tuple[dict, ...] = field(default=())

    @property
    def spec_model(self) -> type[SpecModel]:
        return SPEC_MODELS[self.kind]

    @property
    def status_model(self) -> type[ObjectStatus]:
        return STATUS_MODELS[self.kind]


KINDS: dict[str, KindInfo] = {
    info.kind: info
    for info in (
        KindInfo(
            "AIGateway",
            "aigateways",
            "aigateway",
            ("aigw",),
            "A gateway deployment: pods, Service, and the config rendered from the selected aigw objects.",
            (
                {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                {"name": "Config", "type": "integer", "jsonPath": ".status.configGeneration",
                 "description": "Generation of the rendered config."},
                {"name": "Routes", "type": "integer", "jsonPath": ".status.routes"},
                ACCEPTED_COLUMN,
                AGE_COLUMN,
            ),
        ),
        KindInfo(
            "ModelRoute",
            "modelroutes",
            "modelroute",
            ("mr",),
            "A model name clients send and the upstream targets that serve it.",
            (
                {"name": "Model", "type": "string", "jsonPath": ".spec.model"},
                {"name": "Strategy", "type": "string", "jsonPath": ".spec.strategy"},
                ACCEPTED_COLUMN,
                REASON_COLUMN,
                AGE_COLUMN,
            ),
        ),
        KindInfo(
            "ProviderCredential",
            "providercredentials",
            "providercredential",
            ("pc",),
            "An LLM provider account: API family, endpoint and a reference to its API key.",
            (
                {"name": "Provider", "type": "string", "jsonPath": ".spec.provider"},
                {"name": "BaseURL", "type": "string", "priority": 1, "jsonPath": ".spec.baseURL"},
                ACCEPTED_COLUMN,
                REASON_COLUMN,
                AGE_COLUMN,
            ),
        ),
        KindInfo(
            "TenantQuota",
            "tenantquotas",
            "tenantquota",
            ("tq",),
            "A tenant: API keys, rate limits, budget and allowed models.",
            (
                {"name": "RPM", "type": "integer", "jsonPath": ".spec.limits.requestsPerMinute"},
                {"name": "TPM", "type": "integer", "jsonPath": ".spec.limits.tokensPerMinute"},
                {"name": "Budget", "type": "number", "jsonPath": ".spec.budget.amount"},
                ACCEPTED_COLUMN,
                AGE_COLUMN,
            ),
        ),
        KindInfo(
            "GuardrailPolicy",
            "guardrailpolicies",
            "guardrailpolicy",
            ("gp",),
            "Guardrails (PII, prompt injection, secrets) attached to routes and tenants.",
            (
                {"name": "FailMode", "type": "string", "jsonPath": ".spec.failMode"},
                {"name": "PII", "type": "string", "jsonPath": ".spec.pii.action"},
                ACCEPTED_COLUMN,
                AGE_COLUMN,
            ),
        ),
    )
}

CONTENT_KINDS = ("ModelRoute", "ProviderCredential", "TenantQuota", "GuardrailPolicy")
