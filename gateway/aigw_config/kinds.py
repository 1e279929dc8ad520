"""Spec models of the five custom resource kinds (group aigw.dev, version v1alpha1).

Field names are fixed by the design brief. Rules that span fields are written twice, side by
side: as a CEL expression for the CRD (`CEL_RULES`, enforced by the API server) and as a
pydantic validator (enforced by `aigw serve -f`, `aigw render` and the operator).
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from .base import ObjectName, SecretKeyRef, SpecModel

ProviderType = Literal["openai", "azure-openai", "anthropic", "gemini", "ollama", "openai-compatible", "bedrock"]
RouteStrategy = Literal["priority", "weighted", "least-latency", "lowest-cost"]
UnsupportedFields = Literal["reject", "drop"]
PiiEntity = Literal["email", "phone", "ssn", "creditCard", "ipAddress", "iban", "aadhaar", "pan"]
PiiAction = Literal["mask", "redact", "hash", "block", "log"]
DetectorAction = Literal["block", "flag", "off"]


class CelRule:
    """One `x-kubernetes-validations` entry; `check` is its Python twin."""

    def __init__(self, rule: str, message: str, check) -> None:
        self.rule = rule
        self.message = message
        self.check = check


def _apply_rules(model: SpecModel) -> SpecModel:
    for rule in type(model).CEL_RULES:
        if not rule.check(model):
            raise ValueError(rule.message)
    return model


class RuledSpec(SpecModel):
    CEL_RULES: ClassVar[tuple[CelRule, ...]] = ()

    @model_validator(mode="after")
    def _cel_rules(self):
        return _apply_rules(self)


# --- ProviderCredential -------------------------------------------------------------------------

DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "ollama": "http://127.0.0.1:11434",
}


class ProviderCredentialSpec(RuledSpec):
    """How to reach one LLM provider account: its type, endpoint and API key."""

    provider: ProviderType = Field(description="Provider API family spoken by the endpoint.")
    base_url: str | None = Field(
        default=None,
        alias="baseURL",
        pattern=r"^https?://[^\s]+$",
        max_length=2048,
        description="Endpoint base URL. Optional for openai, anthropic, gemini and ollama, where the "
        "provider's public default is used; required for azure-openai and openai-compatible.",
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the provider API key. Optional for keyless local servers.",
    )
    api_version: str | None = Field(
        default=None, max_length=64, description="azure-openai only: the api-version query parameter."
    )
    region: str | None = Field(default=None, max_length=64, description="bedrock only: the AWS region.")

    CEL_RULES: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            "!(self.provider in ['azure-openai', 'openai-compatible']) || has(self.baseURL)",
            "baseURL is required for provider azure-openai and openai-compatible",
            lambda s: s.provider not in ("azure-openai", "openai-compatible") or s.base_url is not None,
        ),
        CelRule(
            "self.provider != 'azure-openai' || has(self.apiVersion)",
            "apiVersion is required for provider azure-openai",
            lambda s: s.provider != "azure-openai" or s.api_version is not None,
        ),
        CelRule(
            "self.provider != 'bedrock' || has(self.region)",
            "region is required for provider bedrock",
            lambda s: s.provider != "bedrock" or s.region is not None,
        ),
    )

    def effective_base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        if self.provider == "bedrock":
            return f"https://bedrock-runtime.{self.region}.amazonaws.com"
        return DEFAULT_BASE_URLS[self.provider]


# --- ModelRoute ---------------------------------------------------------------------------------


class Pricing(SpecModel):
    """Price of a target in USD per million tokens."""

    input_per_million: float = Field(default=0.0, ge=0, description="USD per million prompt tokens.")
    output_per_million: float = Field(default=0.0, ge=0, description="USD per million completion tokens.")
    cache_read_per_million: float | None = Field(
        default=None, ge=0, description="USD per million prompt tokens read from the provider's cache; default: inputPerMillion."
    )
    cache_write_per_million: float | None = Field(
        default=None, ge=0, description="USD per million prompt tokens written to the provider's cache; default: inputPerMillion."
    )


class RouteTarget(SpecModel):
    """One upstream a route can send a request to."""

    credential_ref: ObjectName = Field(description="Name of the ProviderCredential to call.")
    model: str | None = Field(
        default=None, min_length=1, max_length=256, description="Upstream model name; defaults to spec.model."
    )
    priority: int = Field(
        default=0, ge=0, le=1000, description="Lower is tried first; higher priorities are fallbacks."
    )
    weight: int = Field(default=1, ge=0, le=10000, description="Relative share of traffic for strategy weighted.")
    pricing: Pricing | None = Field(default=None, description="Price used for cost accounting and lowest-cost.")


class RetryPolicy(RuledSpec):
    """Retries of retryable upstream failures (connect errors, timeouts, 429, 5xx)."""

    attempts: int = Field(default=2, ge=0, le=10, description="Retries per target after the first try.")
    initial_backoff_ms: int = Field(default=100, ge=0, le=60000, description="First backoff, doubled per retry.")
    max_backoff_ms: int = Field(default=2000, ge=0, le=300000, description="Upper bound of one backoff.")

    CEL_RULES: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            "self.maxBackoffMs >= self.initialBackoffMs",
            "maxBackoffMs must be at least initialBackoffMs",
            lambda s: s.max_backoff_ms >= s.initial_backoff_ms,
        ),
    )


class Timeouts(RuledSpec):
    """Per-try time limits."""

    request_seconds: float = Field(default=120.0, gt=0, le=3600, description="Whole upstream request, per try.")
    first_byte_seconds: float = Field(
        default=15.0, gt=0, le=3600, description="Wait for the upstream's first byte, per try."
    )

    CEL_RULES: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            "self.firstByteSeconds <= self.requestSeconds",
            "firstByteSeconds must not exceed requestSeconds",
            lambda s: s.first_byte_seconds <= s.request_seconds,
        ),
    )


class RouteLimits(SpecModel):
    """Bounds on what an upstream may send back (counted after decompression)."""

    max_response_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024,
        description="Largest upstream answer (a body, or all of a stream) per try; beyond it: 502, or an error "
        "event when a stream already started.",
    )


class CircuitBreakerPolicy(SpecModel):
    """Per-target circuit breaker."""

    consecutive_failures: int = Field(default=5, ge=1, le=1000, description="Failures in a row that open it.")
    open_seconds: float = Field(default=30.0, gt=0, le=3600, description="Time open before a half-open probe.")


class SemanticCache(SpecModel):
    """Similarity lookup: the last user turn is embedded through another route of the gateway."""

    embedding_route: str = Field(
        min_length=1, max_length=256,
        description="Model name (or alias) of a ModelRoute whose targets serve embeddings.",
    )
    threshold: float = Field(default=0.92, gt=0, le=1, description="Cosine similarity at or above which a hit is served.")


class RouteCache(RuledSpec):
    """Response caching for a route. Entries never hold PII: what is keyed and stored is the request
    and the answer after input masking; each caller gets its own values restored."""

    mode: Literal["off", "exact", "semantic"] = Field(
        default="off", description="off, exact (hash of the normalized request) or semantic (exact first, then similarity)."
    )
    ttl_seconds: int = Field(default=3600, ge=1, le=2592000, description="Lifetime of an entry.")
    scope: Literal["tenant", "route"] = Field(
        default="tenant", description="tenant: entries never cross tenants; route: shared by the route's tenants."
    )
    deterministic_only: bool = Field(
        default=True, description="Cache only requests with temperature 0 or a seed (most SDK calls send neither)."
    )
    semantic: SemanticCache | None = Field(default=None, description="Settings of mode semantic.")
    max_entry_bytes: int = Field(default=1048576, ge=1024, le=67108864, description="Larger answers are not stored.")
    count_tokens_on_hit: bool = Field(
        default=False, description="Count a hit's tokens toward the tenant's tokensPerMinute (requests always count)."
    )
    store_tool_calls: bool = Field(default=False, description="Also store answers that end in tool calls awaiting results.")

    CEL_RULES: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            "self.mode != 'semantic' || has(self.semantic)",
            "mode semantic needs semantic.embeddingRoute",
            lambda s: s.mode != "semantic" or s.semantic is not None,
        ),
    )


class ModelRouteSpec(RuledSpec):
    """A model name clients send, and the upstream targets that serve it."""

    model: str = Field(min_length=1, max_length=256, description="The model name clients send.")
    aliases: list[str] = Field(
        default_factory=list, max_length=32, description="Other names clients may send for this route."
    )
    strategy: RouteStrategy = Field(default="priority", description="How a target is chosen among equals.")
    targets: list[RouteTarget] = Field(min_length=1, max_length=32, description="Upstream targets; at least one.")
    retry: RetryPolicy = Field(default_factory=RetryPolicy, description="Retry policy per target.")
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Per-try timeouts.")
    limits: RouteLimits = Field(default_factory=RouteLimits, description="Bounds on upstream answers.")
    circuit_breaker: CircuitBreakerPolicy = Field(
        default_factory=CircuitBreakerPolicy, description="Circuit breaker per target."
    )
    guardrail_policy_ref: ObjectName | None = Field(
        default=None, description="GuardrailPolicy applied to every request on this route."
    )
    unsupported_fields: UnsupportedFields = Field(
        default="reject",
        description="A request field a target's API cannot honour (translated across formats): reject answers "
        "400 naming it; drop sends the request without it and lists it in the x-aigw-dropped-fields header.",
    )
    cache: RouteCache | None = Field(default=None, description="Response caching (off when absent).")

    CEL_RULES: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            "!has(self.aliases) || !(self.model in self.aliases)",
            "aliases must not repeat spec.model",
            lambda s: s.model not in s.aliases,
        ),
        CelRule(
            "self.strategy != 'weighted' || self.targets.exists(t, t.weight > 0)",
            "strategy weighted needs at least one target with weight > 0",
            lambda s: s.strategy != "weighted" or any(t.weight > 0 for t in s.targets),
        ),
        CelRule(
            "self.strategy != 'lowest-cost' || self.targets.all(t, has(t.pricing))",
            "strategy lowest-cost needs pricing on every target",
            lambda s: s.strategy != "lowest-cost" or all(t.pricing is not None for t in s.targets),
        ),
    )

    @field_validator("aliases")
    @classmethod
    def _aliases_unique(cls, aliases: list[str]) -> list[str]:
        if len(set(aliases)) != len(aliases):
            raise ValueError("aliases must be unique")
        if any(not a for a in aliases):
            raise ValueError("aliases must not be empty strings")
        return aliases


# --- TenantQuota --------------------------------------------------------------------------------


class Limits(SpecModel):
    """Rate limits per tenant, shared by every gateway replica."""

    requests_per_minute: int | None = Field(default=None, ge=1, le=1_000_000_000, description="Requests per minute.")
    tokens_per_minute: int | None = Field(
        default=None, ge=1, le=1_000_000_000_000, description="Prompt plus completion tokens per minute."
    )
    concurrent_requests: int | None = Field(
        default=None, ge=1, le=1_000_000,
        description="Requests in flight at once, across the gateway's pods (429 concurrency_limit_exceeded beyond).",
    )


class Budget(SpecModel):
    """Spend limit per calendar period (UTC)."""

    amount: float = Field(ge=0, le=1_000_000_000, description="Spend allowed per period.")
    currency: Literal["USD"] = Field(default="USD", description="Currency of amount; USD only.")
    period: Literal["daily", "weekly", "monthly"] = Field(default="monthly", description="Calendar window in UTC.")
    on_exceeded: Literal["block", "warn"] = Field(
        default="block", description="block refuses requests over budget; warn serves and flags them."
    )


class TenantCache(SpecModel):
    """A tenant's opt-out of response caching."""

    enabled: bool = Field(default=True, description="false: this tenant's requests never read or write the cache.")


class TenantQuotaSpec(SpecModel):
    """A tenant: its API keys, limits, budget and allowed models."""

    api_key_secret_refs: list[SecretKeyRef] = Field(
        default_factory=list, max_length=16,
        description="Secret keys holding the tenant's API keys (stored hashed). Only the TenantQuota an AIGateway "
        "names in spec.gateway.allowAnonymous may have none.",
    )
    limits: Limits | None = Field(default=None, description="Requests and tokens per minute.")
    budget: Budget | None = Field(default=None, description="Spend limit per period.")
    allowed_models: list[str] = Field(
        default_factory=list, max_length=256, description="Route models or aliases this tenant may call; empty: all."
    )
    guardrail_policy_ref: ObjectName | None = Field(
        default=None, description="GuardrailPolicy applied to every request of this tenant."
    )
    cache: TenantCache | None = Field(default=None, description="Response caching for this tenant (on when absent).")


ANONYMOUS_NAME = "anonymous"  # reserved: callers without a key are never a TenantQuota of this name

# Rules on a whole object (they need metadata.name), per kind: the CRD's root
# `x-kubernetes-validations`, and their Python twin `object_problems` (the renderer's).
OBJECT_RULES: dict[str, tuple[CelRule, ...]] = {
    "TenantQuota": (
        CelRule(
            f"self.metadata.name != '{ANONYMOUS_NAME}'",
            f"the name '{ANONYMOUS_NAME}' is reserved: name the quota of callers without a key otherwise and "
            "reference it from the AIGateway's spec.gateway.allowAnonymous",
            lambda name: name != ANONYMOUS_NAME,
        ),
    ),
}


def object_problems(kind: str, name: str) -> list[str]:
    return [rule.message for rule in OBJECT_RULES.get(kind, ()) if not rule.check(name)]


# --- GuardrailPolicy ----------------------------------------------------------------------------


class CustomPattern(SpecModel):
    """A custom PII detector: a regular expression with a name."""

    name: str = Field(pattern=r"^[a-zA-Z][a-zA-Z0-9_-]{0,62}$", description="Detector name; used in placeholders.")
    pattern: str = Field(min_length=1, max_length=1024, description="Python regular expression.")
    action: PiiAction | None = Field(default=None, description="Action for this detector; defaults to pii.action.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return pattern


class PiiPolicy(RuledSpec):
    """PII detection and what to do with a match."""

    direction: Literal["input", "output", "both"] = Field(default="both", description="Which traffic is scanned.")
    action: PiiAction = Field(default="mask", description="What happens to a match.")
    restore_in_response: bool = Field(
        default=False, description="Put the original values back into the model's answer (action mask only)."
    )
    entities: list[PiiEntity] = Field(default_factory=list, description="Built-in detectors to run.")
    custom: list[CustomPattern] = Field(default_factory=list, max_length=64, description="Custom detectors.")

    CEL_RULES: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            "!self.restoreInResponse || self.action == 'mask'",
            "restoreInResponse needs action mask",
            lambda s: not s.restore_in_response or s.action == "mask",
        ),
    )


class DetectorPolicy(SpecModel):
    """A heuristic detector switch."""

    action: DetectorAction = Field(default="block", description="block refuses, flag records, off disables.")


class GuardrailPolicySpec(SpecModel):
    """Guardrails attached to routes and tenants."""

    fail_mode: Literal["open", "closed"] = Field(
        default="closed", description="When a guardrail itself fails: open serves, closed refuses."
    )
    pii: PiiPolicy | None = Field(default=None, description="PII detection.")
    prompt_injection: DetectorPolicy | None = Field(default=None, description="Prompt-injection heuristics.")
    secrets: DetectorPolicy | None = Field(default=None, description="API keys, tokens and private keys in prompts.")


# --- AIGateway ----------------------------------------------------------------------------------


class RedisSpec(SpecModel):
    """Redis shared by the gateway replicas for limits and budgets."""

    url_secret_ref: SecretKeyRef = Field(description="Secret key holding the redis:// or rediss:// URL.")


class LedgerPostgresSpec(SpecModel):
    """The external PostgreSQL of the usage ledger (e.g. a CloudNativePG cluster's app Secret)."""

    url_secret_ref: SecretKeyRef = Field(description="Secret key holding the postgresql:// URL.")


class LedgerSpec(SpecModel):
    """The usage ledger: one row per request in PostgreSQL, written by the `<gateway>-ledger` Deployment."""

    postgres: LedgerPostgresSpec = Field(description="Where the ledger is stored.")
    retention_days: int = Field(default=400, ge=1, le=3650, description="Rows older than this are deleted.")
    lag_threshold: int = Field(
        default=10_000, ge=1, le=100_000_000,
        description="LedgerReady is False (reason Lagging) while more usage events than this wait in the stream.",
    )


class ServiceSpec(SpecModel):
    """The Service in front of the gateway pods."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(default="ClusterIP", description="Service type.")
    port: int = Field(default=8080, ge=1, le=65535, description="Service port.")


class LabelSelectorRequirement(SpecModel):
    key: str = Field(min_length=1, description="Label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(description="Set operator.")
    values: list[str] = Field(default_factory=list, description="Values for In and NotIn.")


class LabelSelector(SpecModel):
    """A Kubernetes label selector; empty selects everything."""

    match_labels: dict[str, str] = Field(default_factory=dict, description="Labels that must all match.")
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, description="Set-based requirements that must all hold."
    )

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
            if req.operator == "In" and labels.get(req.key) not in req.values:
                return False
            if req.operator == "NotIn" and present and labels[req.key] in req.values:
                return False
        return True


class GatewayBehaviour(SpecModel):
    """Request handling settings of the gateway pods."""

    max_request_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024, description="Larger request bodies get 413."
    )
    allow_anonymous: ObjectName | None = Field(
        default=None,
        description="Name of a TenantQuota whose limits, budget and allowedModels apply to requests without an "
        "API key; unset: such requests are refused (401).",
    )
    redis_fail_mode: Literal["open", "closed"] = Field(
        default="open",
        description="When Redis is unreachable: open serves without limits (counted in a metric and logged), "
        "closed refuses with 503.",
    )
    max_request_items: int = Field(
        default=16384, ge=16, le=1_000_000,
        description="Most items in any top-level array of a request body (messages, input, contents, tools...); "
        "more get 400 naming the field.",
    )
    max_tokens_estimate: int = Field(
        default=1024,
        ge=1,
        le=1_000_000,
        description="Completion tokens reserved against tokensPerMinute for a request that sets no max_tokens; "
        "the reservation is settled to the real usage afterwards.",
    )


    @field_validator("allow_anonymous", mode="before")
    @classmethod
    def _anonymous_is_a_reference(cls, value: object) -> object:
        if value is False:
            return None  # the former default
        if value is True:
            raise ValueError(
                "allowAnonymous is now the name of a TenantQuota whose limits, budget and allowedModels apply to "
                "callers without an API key (true would serve them without any): create one and name it here"
            )
        return value


Quantity = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$", max_length=32)]


class ResourceRequirements(SpecModel):
    """CPU and memory of each gateway container (Kubernetes quantities as strings, e.g. "500m", "256Mi")."""

    requests: dict[str, Quantity] = Field(default_factory=dict, description="Requests (cpu, memory).")
    limits: dict[str, Quantity] = Field(default_factory=dict, description="Limits (cpu, memory).")


class Autoscaling(RuledSpec):
    """A HorizontalPodAutoscaler on CPU; spec.replicas is then the autoscaler's to set."""

    min_replicas: int = Field(default=1, ge=1, le=100, description="Fewest replicas.")
    max_replicas: int = Field(ge=1, le=100, description="Most replicas.")
    target_cpu_utilization_percentage: int = Field(
        default=70, ge=1, le=100, alias="targetCPUUtilizationPercentage", description="Average CPU target."
    )

    CEL_RULES: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            "self.maxReplicas >= self.minReplicas",
            "maxReplicas must be at least minReplicas",
            lambda s: s.max_replicas >= s.min_replicas,
        ),
    )


class DisruptionBudget(RuledSpec):
    """A PodDisruptionBudget for the gateway pods: give one of the two."""

    min_available: int | None = Field(default=None, ge=0, description="Pods that must stay up.")
    max_unavailable: int | None = Field(default=None, ge=0, description="Pods that may be down at once.")

    CEL_RULES: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            "has(self.minAvailable) != has(self.maxUnavailable)",
            "give exactly one of minAvailable and maxUnavailable",
            lambda s: (s.min_available is None) != (s.max_unavailable is None),
        ),
    )


class AIGatewaySpec(SpecModel):
    """A gateway deployment and the objects it serves."""

    replicas: int = Field(default=1, ge=0, le=100, description="Gateway pod replicas.")
    image: str | None = Field(default=None, max_length=512, description="Gateway image; the operator's default otherwise.")
    redis: RedisSpec | None = Field(default=None, description="Redis for shared limits; in-memory per pod otherwise.")
    ledger: LedgerSpec | None = Field(
        default=None, description="Usage ledger in PostgreSQL (needs redis: usage events travel through a Redis stream)."
    )
    service: ServiceSpec = Field(default_factory=ServiceSpec, description="Service settings.")
    selector: LabelSelector = Field(
        default_factory=LabelSelector, description="Selects the other aigw objects of the namespace; empty: all."
    )
    gateway: GatewayBehaviour = Field(default_factory=GatewayBehaviour, description="Request handling settings.")
    resources: ResourceRequirements | None = Field(default=None, description="Container resources; a small default otherwise.")
    autoscaling: Autoscaling | None = Field(default=None, description="Optional HorizontalPodAutoscaler.")
    pod_disruption_budget: DisruptionBudget | None = Field(default=None, description="Optional PodDisruptionBudget.")


SPEC_MODELS: dict[str, type[SpecModel]] = {
    "AIGateway": AIGatewaySpec,
    "ModelRoute": ModelRouteSpec,
    "ProviderCredential": ProviderCredentialSpec,
    "TenantQuota": TenantQuotaSpec,
    "GuardrailPolicy": GuardrailPolicySpec,
}
