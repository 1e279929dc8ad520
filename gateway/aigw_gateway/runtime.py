"""A loaded config, compiled for the request path, and the holder that swaps it atomically.

A `Runtime` is immutable: requests take a reference at their start and keep it, so a config
swap never changes a request in flight. Swapping is one attribute assignment.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

from aigw_config.config import (
    GatewayConfig,
    GatewayCredentials,
    ProviderConfig,
    RouteConfig,
    TenantConfig,
    key_hash_matches,
)

log = logging.getLogger("aigw.config")

def pii_hash_key_of(credentials: GatewayCredentials) -> bytes:
    """The PII `hash` key of these credentials. Credentials rendered before the key existed get
    one derived from their own secret content (provider keys, key hashes, report token): stable
    across the pods of one render, unknown to anyone without the credentials."""
    if credentials.pii_hash_key:
        return credentials.pii_hash_key.encode()
    return hashlib.sha256(b"aigw-pii-hash\0" + credentials.to_json()).digest()


class UnservableConfig(ValueError):
    """A config that is well-formed but cannot be served (e.g. credentials from another render)."""


@dataclass(frozen=True)
class Runtime:
    config: GatewayConfig
    routes_by_model: dict[str, RouteConfig]
    tenants_by_key_hash: dict[str, TenantConfig]
    allowed_models: dict[str, frozenset[str] | None]  # tenant -> route names it may use; None: all
    key_hashes_of: dict[str, tuple[str, ...]]
    providers: dict[str, ProviderConfig]
    provider_keys: dict[str, str]
    redis_url: str | None
    report_token: str | None
    loaded_at: float
    pii_hash_key: bytes = b""
    anonymous: TenantConfig | None = None  # the quota of callers without a key (allowAnonymous); None: refused

    @property
    def generation(self) -> int:
        return self.config.generation

    @property
    def key_scope(self) -> str:
        """`<namespace>/<gateway>`: the identity in every Redis key of this gateway's tenants."""
        return self.config.gateway.key_scope

    @classmethod
    def build(cls, config: GatewayConfig, credentials: GatewayCredentials) -> "Runtime":
        if config.credentials_hash and config.credentials_hash != credentials.content_hash():
            raise UnservableConfig("credentials do not match the config (waiting for the matching Secret)")
        routes: dict[str, RouteConfig] = {}
        for route in config.routes:
            for name in (route.model, *route.aliases):
                if name in routes:
                    raise UnservableConfig(f"model name {name!r} is served by two routes")
                routes[name] = route
        providers = {p.name: p for p in config.providers}
        for route in config.routes:
            for target in route.targets:
                provider = providers.get(target.credential)
                if provider is None:
                    raise UnservableConfig(f"route {route.name!r} names unknown credential {target.credential!r}")
                if provider.has_api_key and target.credential not in credentials.provider_keys:
                    raise UnservableConfig(f"credential {target.credential!r} has no API key in the credentials")
        tenants_by_name = {t.name: t for t in config.tenants}
        by_hash: dict[str, TenantConfig] = {}
        for tenant_name, hashes in credentials.tenant_key_hashes.items():
            tenant = tenants_by_name.get(tenant_name)
            if tenant is None:
                continue
            for h in hashes:
                by_hash[h] = tenant
        allowed: dict[str, frozenset[str] | None] = {}
        for tenant in config.tenants:
            if tenant.allowed_models:
                allowed[tenant.name] = frozenset(
                    routes[m].name for m in tenant.allowed_models if m in routes
                )
            else:
                allowed[tenant.name] = None
        if config.redis_url_key and not credentials.redis_url:
            raise UnservableConfig("the AIGateway names a Redis URL Secret but the credentials carry no URL")
        return cls(
            config=config,
            routes_by_model=routes,
            tenants_by_key_hash=by_hash,
            key_hashes_of={t: tuple(h) for t, h in credentials.tenant_key_hashes.items()},
            allowed_models=allowed,
            providers=providers,
            provider_keys=dict(credentials.provider_keys),
            redis_url=credentials.redis_url,
            report_token=credentials.report_token,
            loaded_at=time.time(),
            pii_hash_key=pii_hash_key_of(credentials),
            anonymous=tenants_by_name.get(config.settings.allow_anonymous or ""),
        )

    def tenant_for_key(self, api_key: str) -> TenantConfig | None:
        presented = "sha256:" + hashlib.sha256(api_key.encode()).hexdigest()
        tenant = self.tenants_by_key_hash.get(presented)
        # The lookup is by hash (what leaks through its timing is the hash, not the key); the
        # final comparison is constant-time all the same.
        if tenant is None or not any(key_hash_matches(presented, h) for h in self.key_hashes_of[tenant.name]):
            return None
        return tenant

    def may_use(self, tenant: TenantConfig, route: RouteConfig) -> bool:
        allowed = self.allowed_models.get(tenant.name)
        return allowed is None or route.name in allowed


class RuntimeHolder:
    """The current runtime. `offer` validates and swaps; a bad config never replaces a good one."""

    def __init__(self) -> None:
        self.current: Runtime | None = None
        self.last_error: str | None = None
        self.rejected_total = 0
        self.loaded_total = 0

    def offer(self, config: GatewayConfig, credentials: GatewayCredentials, source: str) -> bool:
        if self.current is not None and self.current.config.hash == config.hash and (
            self.current.config.credentials_hash == config.credentials_hash
        ):
            return True
        try:
            runtime = Runtime.build(config, credentials)
        except ValueError as exc:
            self.reject(str(exc), source)
            return False
        self.current = runtime
        self.last_error = None
        self.loaded_total += 1
        log.info(
            "config loaded: generation %d %s from %s (%d routes, %d tenants)",
            config.generation, config.hash[:19], source, len(config.routes), len(config.tenants),
        )
        return True

    def reject(self, reason: str, source: str) -> None:
        self.last_error = reason
        self.rejected_total += 1
        if self.current is None:
            log.error("config from %s rejected, nothing to serve yet: %s", source, reason)
        else:
            log.error(
                "config from %s rejected, still serving generation %d: %s",
                source, self.current.generation, reason,
            )
