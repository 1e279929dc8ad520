"""The five kinds: names, short names and printer columns (what `kubectl get` shows)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .kinds import SPEC_MODELS, SpecModel
from .status import STATUS_MODELS, ObjectStatus

def _condition(kind: str, column: str, description: str, priority: int = 0) -> dict:
    col = {"name": column, "type": "string", "jsonPath": f'.status.conditions[?(@.type=="{kind}")].status',
           "description": description}
    return {**col, "priority": priority} if priority else col


ACCEPTED_COLUMN = _condition("Accepted", "Accepted", "Whether the object is valid and rendered into a gateway config.", 1)
REASON_COLUMN = {
    "name": "Reason",
    "type": "string",
    "priority": 1,
    "jsonPath": '.status.conditions[?(@.type=="Accepted")].reason',
    "description": "Reason of the Accepted condition.",
}
READY_COLUMN = _condition("Ready", "Ready", "Whether every reporting gateway pod serves the current config.")
DEGRADED_COLUMN = _condition("Degraded", "Degraded", "Whether the pods report trouble (open circuits, errors, budget).", 1)
SERVED_COLUMN = {"name": "Served", "type": "string", "jsonPath": ".status.served",
                 "description": "Pods serving the current config generation / pods reporting."}
RPM_COLUMN = {"name": "RPM", "type": "number", "jsonPath": ".status.requestsPerMinute",
              "description": "Requests per minute over the pods' report window."}
ERR_COLUMN = {"name": "Err%", "type": "number", "jsonPath": ".status.errorPercent",
              "description": "Failed requests in percent over the report window."}
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
                {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas", "description": "Pods wanted."},
                {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas",
                 "description": "Ready endpoints of the gateway Service."},
                SERVED_COLUMN,
                {"name": "Config", "type": "integer", "jsonPath": ".status.configGeneration",
                 "description": "Generation of the rendered config."},
                {"name": "Routes", "type": "integer", "jsonPath": ".status.routes"},
                {"name": "Endpoint", "type": "string", "priority": 1, "jsonPath": ".status.endpoint",
                 "description": "In-cluster URL of the gateway Service."},
                ACCEPTED_COLUMN,
                DEGRADED_COLUMN,
                {"name": "Ledger", "type": "string", "priority": 1,
                 "jsonPath": '.status.conditions[?(@.type=="LedgerReady")].reason',
                 "description": "Reason of LedgerReady (spec.ledger): Writing, WriterNotRunning, PostgresUnreachable, Lagging."},
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
                READY_COLUMN,
                SERVED_COLUMN,
                RPM_COLUMN,
                ERR_COLUMN,
                {"name": "P95", "type": "number", "jsonPath": ".status.latencyP95Ms",
                 "description": "p95 latency in ms over the report window (highest pod)."},
                {"name": "Strategy", "type": "string", "priority": 1, "jsonPath": ".spec.strategy"},
                ACCEPTED_COLUMN,
                REASON_COLUMN,
                DEGRADED_COLUMN,
                AGE_COLUMN,
            ),
        ),
        KindInfo(
            "ProviderCredential",
            "providercredentials",
            "providercredential",
            ("pcred",),
            "An LLM provider account: API family, endpoint and a reference to its API key.",
            (
                {"name": "Provider", "type": "string", "jsonPath": ".spec.provider"},
                READY_COLUMN,
                {"name": "Health", "type": "string", "jsonPath": ".status.health",
                 "description": "Across every route target that uses the credential."},
                RPM_COLUMN,
                ERR_COLUMN,
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
                READY_COLUMN,
                {"name": "Tokens/min", "type": "integer", "jsonPath": ".status.tokensThisMinute",
                 "description": "Tokens counted in the current minute."},
                {"name": "Spend", "type": "number", "jsonPath": ".status.spendThisPeriod",
                 "description": "USD spent in the current budget period."},
                {"name": "Remaining", "type": "number", "jsonPath": ".status.budgetRemaining",
                 "description": "USD left in the current budget period."},
                {"name": "Throttled", "type": "integer", "jsonPath": ".status.throttledRequests",
                 "description": "Requests refused by a limit or the budget."},
                {"name": "RPM-Limit", "type": "integer", "priority": 1, "jsonPath": ".spec.limits.requestsPerMinute"},
                {"name": "TPM-Limit", "type": "integer", "priority": 1, "jsonPath": ".spec.limits.tokensPerMinute"},
                {"name": "Budget", "type": "number", "priority": 1, "jsonPath": ".spec.budget.amount"},
                ACCEPTED_COLUMN,
                DEGRADED_COLUMN,
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
                READY_COLUMN,
                {"name": "FailMode", "type": "string", "jsonPath": ".spec.failMode"},
                {"name": "PII", "type": "string", "jsonPath": ".spec.pii.action"},
                {"name": "Matches", "type": "integer", "jsonPath": ".status.totalMatches",
                 "description": "Guardrail matches since the reporting pods started."},
                ACCEPTED_COLUMN,
                AGE_COLUMN,
            ),
        ),
    )
}

CONTENT_KINDS = ("ModelRoute", "ProviderCredential", "TenantQuota", "GuardrailPolicy")
