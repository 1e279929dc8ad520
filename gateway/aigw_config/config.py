"""The rendered gateway config: what the operator writes and the gateway hot-loads.

Two documents, written together:
- `GatewayConfig` (ConfigMap key `config.json`): everything but secrets.
- `GatewayCredentials` (Secret key `credentials.json`): provider API keys and tenant key hashes.

`GatewayConfig.credentials_hash` names the credentials document it expects, so a gateway that
sees the ConfigMap before the Secret (they are separate API objects) waits instead of serving
a half-updated pair. `schema_version` is the contract's major version: a gateway refuses a
config whose version it does not know (a mismatched operator mid-upgrade).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .kinds import (
    CircuitBreakerPolicy,
    GatewayBehaviour,
    GuardrailPolicySpec,
    Limits,
    Budget,
    Pricing,
    ProviderType,
    RetryPolicy,
    RouteLimits,
    RouteCache,
    RouteStrategy,
    UnsupportedFields,
    Timeouts,
)

SCHEMA_VERSION = 1
CONFIG_KEY = "config.json"
CREDENTIALS_KEY = "credentials.json"


class ConfigModel(BaseModel):
    # Unknown fields are ignored: a newer operator of the same schema version may add some.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class ProviderConfig(ConfigModel):
    name: str
    provider: ProviderType
    base_url: str = Field(alias="baseURL")
    api_version: str | None = None
    region: str | None = None
    has_api_key: bool = False


class TargetConfig(ConfigModel):
    credential: str
    model: str
    priority: int = 0
    weight: int = 1
    pricing: Pricing | None = None


class RouteConfig(ConfigModel):
    name: str
    model: str
    aliases: tuple[str, ...] = ()
    strategy: RouteStrategy = "priority"
    targets: tuple[TargetConfig, ...]
    retry: RetryPolicy = RetryPolicy()
    timeouts: Timeouts = Timeouts()
    limits: RouteLimits = RouteLimits()
    circuit_breaker: CircuitBreakerPolicy = CircuitBreakerPolicy()
    guardrail_policy: str | None = None
    unsupported_fields: UnsupportedFields = "reject"
    cache: RouteCache | None = None


class TenantConfig(ConfigModel):
    name: str
    limits: Limits | None = None
    budget: Budget | None = None
    allowed_models: tuple[str, ...] = ()
    guardrail_policy: str | None = None
    cache_enabled: bool = True


class GatewayIdentity(ConfigModel):
    """Which AIGateway this config belongs to. Part of every Redis key (`key_scope`), so two
    gateways sharing one Redis never share a tenant's counters or spend."""

    name: str = "local"
    namespace: str = "default"

    @property
    def key_scope(self) -> str:
        return f"{self.namespace}/{self.name}"


class GatewayConfig(ConfigModel):
    schema_version: int = SCHEMA_VERSION
    generation: int = 0
    hash: str = ""
    credentials_hash: str = ""
    gateway: GatewayIdentity = GatewayIdentity()
    settings: GatewayBehaviour = GatewayBehaviour()
    redis_url_key: str | None = Field(
        default=None, description="Set when the AIGateway names a Redis URL Secret: found in credentials.redisUrl."
    )
    providers: tuple[ProviderConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    tenants: tuple[TenantConfig, ...] = ()
    guardrails: dict[str, GuardrailPolicySpec] = Field(default_factory=dict)

    def content_hash(self) -> str:
        body = self.model_dump(mode="json", by_alias=True, exclude={"generation", "hash"})
        return "sha256:" + hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def sealed(self, generation: int) -> "GatewayConfig":
        """A copy with `generation` set and `hash` computed."""
        return self.model_copy(update={"generation": generation, "hash": self.content_hash()})

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", by_alias=True), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)


class GatewayCredentials(ConfigModel):
    provider_keys: dict[str, str] = Field(default_factory=dict, description="credential name -> API key")
    tenant_key_hashes: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="tenant name -> 'sha256:<hex>' of each API key"
    )
    redis_url: str | None = None
    report_token: str | None = Field(
        default=None, description="Bearer token that guards a pod's /internal/report (set by the operator)."
    )
    pii_hash_key: str | None = Field(
        default=None,
        description="Random per-gateway key of the PII `hash` action's HMAC; generated once by the operator "
        "(or `aigw serve -f`/`aigw render`) and kept across renders.",
    )

    def __repr_args__(self):
        # Never let a key reach a log line through repr().
        yield "provider_keys", sorted(self.provider_keys)
        yield "tenant_key_hashes", {k: len(v) for k, v in self.tenant_key_hashes.items()}
        yield "redis_url", "<set>" if self.redis_url else None
        yield "report_token", "<set>" if self.report_token else None
        yield "pii_hash_key", "<set>" if self.pii_hash_key else None

    def content_hash(self) -> str:
        body = self.model_dump(mode="json", by_alias=True)
        return "sha256:" + hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", by_alias=True), option=orjson.OPT_SORT_KEYS)


def hash_api_key(key: str) -> str:
    """The stored form of a tenant API key. Keys are high-entropy, so a plain SHA-256 suffices."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_hash_matches(presented_hash: str, stored_hash: str) -> bool:
    return hmac.compare_digest(presented_hash.encode(), stored_hash.encode())


class IncompatibleConfig(ValueError):
    pass


def load_config(raw: bytes | str | dict[str, Any]) -> GatewayConfig:
    """Parse and check a config document; raises ValueError (pydantic's or IncompatibleConfig)."""
    data = orjson.loads(raw) if isinstance(raw, (bytes, str)) else raw
    if not isinstance(data, dict):
        raise IncompatibleConfig("config document must be a JSON object")
    version = data.get("schemaVersion")
    if version != SCHEMA_VERSION:
        raise IncompatibleConfig(
            f"config schemaVersion {version!r} is not supported by this gateway (supports {SCHEMA_VERSION})"
        )
    config = GatewayConfig.model_validate(data)
    if config.hash and config.hash != config.content_hash():
        raise IncompatibleConfig("config hash does not match its content (corrupt or hand-edited)")
    return config


def load_credentials(raw: bytes | str | dict[str, Any]) -> GatewayCredentials:
    data = orjson.loads(raw) if isinstance(raw, (bytes, str)) else raw
    return GatewayCredentials.model_validate(data)
