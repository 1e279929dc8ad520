"""Pure translation: aigw objects and Secrets of one namespace -> GatewayConfig + GatewayCredentials.

Used by the operator (objects from the API server), by `aigw serve -f` and by `aigw render`
(objects from files). No I/O here; every object gets a verdict saying whether, and why (not),
it is served.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .config import (
    GatewayConfig,
    GatewayCredentials,
    GatewayIdentity,
    ProviderConfig,
    RouteConfig,
    TargetConfig,
    TenantConfig,
    hash_api_key,
)
from .kinds import (
    AIGatewaySpec,
    GuardrailPolicySpec,
    ModelRouteSpec,
    ProviderCredentialSpec,
    SecretKeyRef,
    TenantQuotaSpec,
    object_problems,
)
from .resources import ConfigError, Resource
from .status import (
    REASON_ACCEPTED,
    REASON_CONFLICT,
    REASON_INVALID,
    REASON_PARTIALLY_RESOLVED,
    REASON_REF_NOT_FOUND,
    REASON_SECRET_NOT_FOUND,
    TEMPORARY_REASONS,
)


@dataclass(frozen=True)
class Verdict:
    """Whether one object is served, as the `Accepted` condition will say."""

    kind: str
    name: str
    generation: int
    served: bool
    reason: str
    message: str

    @property
    def temporary(self) -> bool:
        return self.reason in TEMPORARY_REASONS

    @property
    def permanent(self) -> bool:
        return self.reason == REASON_INVALID


@dataclass
class RenderResult:
    config: GatewayConfig
    credentials: GatewayCredentials
    verdicts: dict[tuple[str, str], Verdict] = field(default_factory=dict)

    def problems(self) -> list[Verdict]:
        return [v for v in self.verdicts.values() if v.reason not in (REASON_ACCEPTED,)]


class _Renderer:
    def __init__(
        self,
        resources: Iterable[Resource],
        gateway: Resource | None,
        namespace: str,
        previous: tuple[GatewayConfig, GatewayCredentials] | None,
    ) -> None:
        self.namespace = namespace
        self.previous = previous
        self.gateway = gateway
        self.verdicts: dict[tuple[str, str], Verdict] = {}
        self.secrets: dict[str, dict[str, str]] = {}
        self.by_kind: dict[str, list[Resource]] = {}
        self.gateway_spec = AIGatewaySpec()
        if gateway is not None:
            try:
                self.gateway_spec = gateway.parse_spec()  # type: ignore[assignment]
            except ConfigError as exc:
                self._verdict(gateway, False, REASON_INVALID, "; ".join(exc.problems))
        selector = self.gateway_spec.selector
        for res in resources:
            if res.namespace != namespace:
                continue
            if res.kind == "Secret":
                self.secrets[res.name] = res.data
            elif res.kind != "AIGateway" and selector.matches(res.labels):
                self.by_kind.setdefault(res.kind, []).append(res)
        for items in self.by_kind.values():
            # Oldest first, so that on a conflict the object that was there first keeps serving.
            items.sort(key=lambda r: (r.creation_timestamp or "~", r.name))

    def _verdict(self, res: Resource, served: bool, reason: str, message: str) -> None:
        self.verdicts[(res.kind, res.name)] = Verdict(res.kind, res.name, res.generation, served, reason, message)

    def _parse(self, res: Resource):
        problems = object_problems(res.kind, res.name)  # the CRD's root CEL rules, for objects from files
        if problems:
            self._verdict(res, False, REASON_INVALID, "; ".join(f"metadata.name: {p}" for p in problems))
            return None
        try:
            return res.parse_spec()
        except ConfigError as exc:
            self._verdict(res, False, REASON_INVALID, "; ".join(exc.problems))
            return None

    def _keep_previous(self, res: Resource) -> None:
        """An invalid edit: say that the last valid version keeps serving."""
        old = self.verdicts[(res.kind, res.name)]
        self._verdict(res, True, REASON_INVALID, old.message + "; the last valid version keeps serving")

    def _previous_of(self, attr: str, name: str):
        if self.previous is None:
            return None
        return next((item for item in getattr(self.previous[0], attr) if item.name == name), None)

    def _secret_value(self, ref: SecretKeyRef) -> tuple[str | None, str]:
        data = self.secrets.get(ref.name)
        if data is None:
            return None, f"Secret {ref.name!r} not found"
        value = data.get(ref.key)
        if value is None:
            return None, f"key {ref.key!r} not found in Secret {ref.name!r}"
        if not value.strip():
            return None, f"key {ref.key!r} in Secret {ref.name!r} is empty"
        return value.strip(), ""

    def run(self) -> RenderResult:
        guardrails = self._guardrails()
        providers, provider_keys = self._providers()
        routes = self._routes(providers, guardrails)
        tenants, tenant_hashes = self._tenants(guardrails)
        credentials = GatewayCredentials(
            provider_keys=provider_keys, tenant_key_hashes=tenant_hashes, redis_url=self._redis_url()
        )
        identity = GatewayIdentity(
            name=self.gateway.name if self.gateway else "local",
            namespace=self.namespace,
        )
        anonymous = self.gateway_spec.gateway.allow_anonymous
        if anonymous is not None and self.gateway is not None and not any(t.name == anonymous for t in tenants):
            # Fail closed: without its quota, callers without a key are refused, never served unlimited.
            self._verdict(self.gateway, True, REASON_REF_NOT_FOUND,
                          f"spec.gateway.allowAnonymous: TenantQuota {anonymous!r} not found or not served; "
                          "requests without an API key are refused until it is")
        used_guardrails = {r.guardrail_policy for r in routes} | {t.guardrail_policy for t in tenants}
        config = GatewayConfig(
            gateway=identity,
            settings=self.gateway_spec.gateway,
            redis_url_key="redisUrl" if self.gateway_spec.redis else None,
            providers=tuple(providers[name] for name in sorted(providers)),
            routes=tuple(sorted(routes, key=lambda r: r.name)),
            tenants=tuple(sorted(tenants, key=lambda t: t.name)),
            guardrails={k: v for k, v in sorted(guardrails.items()) if k in used_guardrails},
            credentials_hash=credentials.content_hash(),
        )
        return RenderResult(config=config, credentials=credentials, verdicts=self.verdicts)

    def _redis_url(self) -> str | None:
        if self.gateway is None or self.gateway_spec.redis is None:
            return None
        value, problem = self._secret_value(self.gateway_spec.redis.url_secret_ref)
        if value is None:
            self._verdict(self.gateway, False, REASON_SECRET_NOT_FOUND, f"spec.redis.urlSecretRef: {problem}")
        return value

    def _guardrails(self) -> dict[str, GuardrailPolicySpec]:
        out: dict[str, GuardrailPolicySpec] = {}
        for res in self.by_kind.get("GuardrailPolicy", []):
            spec = self._parse(res)
            if spec is not None:
                out[res.name] = spec
                self._verdict(res, True, REASON_ACCEPTED, "policy is valid")
            elif self.previous is not None and res.name in self.previous[0].guardrails:
                out[res.name] = self.previous[0].guardrails[res.name]
                self._keep_previous(res)
        return out

    def _providers(self) -> tuple[dict[str, ProviderConfig], dict[str, str]]:
        providers: dict[str, ProviderConfig] = {}
        keys: dict[str, str] = {}
        for res in self.by_kind.get("ProviderCredential", []):
            spec: ProviderCredentialSpec | None = self._parse(res)
            if spec is None:
                prev = self._previous_of("providers", res.name)
                if prev is not None and (not prev.has_api_key or res.name in self.previous[1].provider_keys):
                    providers[res.name] = prev
                    if prev.has_api_key:
                        keys[res.name] = self.previous[1].provider_keys[res.name]
                    self._keep_previous(res)
                continue
            if spec.api_key_secret_ref is not None:
                value, problem = self._secret_value(spec.api_key_secret_ref)
                if value is None:
                    self._verdict(res, False, REASON_SECRET_NOT_FOUND, f"spec.apiKeySecretRef: {problem}")
                    continue
                keys[res.name] = value
            providers[res.name] = ProviderConfig(
                name=res.name,
                provider=spec.provider,
                base_url=spec.effective_base_url(),
                api_version=spec.api_version,
                region=spec.region,
                has_api_key=spec.api_key_secret_ref is not None,
            )
            self._verdict(res, True, REASON_ACCEPTED, f"{spec.provider} at {spec.effective_base_url()}")
        return providers, keys

    def _guardrail_ok(self, res: Resource, ref: str | None, guardrails: dict[str, GuardrailPolicySpec]) -> bool:
        if ref is None or ref in guardrails:
            return True
        # Serving without the policy the object asks for would silently drop a guardrail.
        self._verdict(res, False, REASON_REF_NOT_FOUND, f"spec.guardrailPolicyRef: GuardrailPolicy {ref!r} not found or not valid")
        return False

    def _routes(self, providers: dict[str, ProviderConfig], guardrails: dict[str, GuardrailPolicySpec]) -> list[RouteConfig]:
        claimed: dict[str, str] = {}
        out: list[RouteConfig] = []
        for res in self.by_kind.get("ModelRoute", []):
            spec: ModelRouteSpec | None = self._parse(res)
            if spec is None:
                prev = self._previous_of("routes", res.name)
                names = [prev.model, *prev.aliases] if prev else []
                if prev is not None and not any(n in claimed for n in names):
                    targets = tuple(t for t in prev.targets if t.credential in providers)
                    if targets and (prev.guardrail_policy is None or prev.guardrail_policy in guardrails):
                        out.append(prev.model_copy(update={"targets": targets}))
                        claimed.update({n: res.name for n in names})
                        self._keep_previous(res)
                continue
            if not self._guardrail_ok(res, spec.guardrail_policy_ref, guardrails):
                continue
            names = [spec.model, *spec.aliases]
            taken = [f"{n!r} (by ModelRoute {claimed[n]!r})" for n in names if n in claimed]
            if taken:
                self._verdict(res, False, REASON_CONFLICT, "model name already served: " + ", ".join(taken))
                continue
            targets: list[TargetConfig] = []
            missing: list[str] = []
            for i, t in enumerate(spec.targets):
                if t.credential_ref not in providers:
                    missing.append(f"spec.targets[{i}].credentialRef: ProviderCredential {t.credential_ref!r} not found or not accepted")
                    continue
                targets.append(
                    TargetConfig(
                        credential=t.credential_ref,
                        model=t.model or spec.model,
                        priority=t.priority,
                        weight=t.weight,
                        pricing=t.pricing,
                    )
                )
            if not targets:
                self._verdict(res, False, REASON_REF_NOT_FOUND, "; ".join(missing))
                continue
            for n in names:
                claimed[n] = res.name
            out.append(
                RouteConfig(
                    name=res.name,
                    model=spec.model,
                    aliases=tuple(spec.aliases),
                    strategy=spec.strategy,
                    targets=tuple(targets),
                    retry=spec.retry,
                    timeouts=spec.timeouts,
                    limits=spec.limits,
                    circuit_breaker=spec.circuit_breaker,
                    guardrail_policy=spec.guardrail_policy_ref,
                    unsupported_fields=spec.unsupported_fields,
                    cache=spec.cache if spec.cache is not None and spec.cache.mode != "off" else None,
                )
            )
            if missing:
                self._verdict(res, True, REASON_PARTIALLY_RESOLVED,
                              f"served with {len(targets)} of {len(spec.targets)} targets; " + "; ".join(missing))
            else:
                self._verdict(res, True, REASON_ACCEPTED, f"served with {len(targets)} target(s)")
        return out

    def _tenants(self, guardrails: dict[str, GuardrailPolicySpec]) -> tuple[list[TenantConfig], dict[str, tuple[str, ...]]]:
        owner_of_hash: dict[str, str] = {}
        tenants: list[TenantConfig] = []
        hashes: dict[str, tuple[str, ...]] = {}
        for res in self.by_kind.get("TenantQuota", []):
            spec: TenantQuotaSpec | None = self._parse(res)
            if spec is None:
                prev = self._previous_of("tenants", res.name)
                prev_hashes = self.previous[1].tenant_key_hashes.get(res.name, ()) if self.previous else ()
                if prev is not None and prev_hashes and not any(h in owner_of_hash for h in prev_hashes) and (
                    prev.guardrail_policy is None or prev.guardrail_policy in guardrails
                ):
                    tenants.append(prev)
                    hashes[res.name] = prev_hashes
                    owner_of_hash.update({h: res.name for h in prev_hashes})
                    self._keep_previous(res)
                continue
            if not self._guardrail_ok(res, spec.guardrail_policy_ref, guardrails):
                continue
            found: list[str] = []
            missing: list[str] = []
            for i, ref in enumerate(spec.api_key_secret_refs):
                value, problem = self._secret_value(ref)
                if value is None:
                    missing.append(f"spec.apiKeySecretRefs[{i}]: {problem}")
                else:
                    found.append(hash_api_key(value))
            anonymous = res.name == self.gateway_spec.gateway.allow_anonymous
            if not spec.api_key_secret_refs and not anonymous:
                self._verdict(res, False, REASON_INVALID, "spec.apiKeySecretRefs: no API keys, and no AIGateway "
                              "names this TenantQuota in spec.gateway.allowAnonymous")
                continue
            if not found and not anonymous:
                self._verdict(res, False, REASON_SECRET_NOT_FOUND, "; ".join(missing))
                continue
            clash = sorted({owner_of_hash[h] for h in found if h in owner_of_hash})
            if clash:
                self._verdict(res, False, REASON_CONFLICT, f"an API key is already used by TenantQuota {', '.join(clash)}")
                continue
            for h in found:
                owner_of_hash[h] = res.name
            hashes[res.name] = tuple(sorted(set(found)))
            tenants.append(
                TenantConfig(
                    name=res.name,
                    limits=spec.limits,
                    budget=spec.budget,
                    allowed_models=tuple(spec.allowed_models),
                    guardrail_policy=spec.guardrail_policy_ref,
                    cache_enabled=spec.cache is None or spec.cache.enabled,
                )
            )
            served_as = f"served with {len(found)} key(s)" + (" and for callers without a key" if anonymous else "")
            if missing:
                self._verdict(res, True, REASON_PARTIALLY_RESOLVED, f"{served_as}; " + "; ".join(missing))
            else:
                self._verdict(res, True, REASON_ACCEPTED, served_as)
        return tenants, hashes


def render(
    resources: Iterable[Resource],
    *,
    gateway: Resource | None = None,
    namespace: str = "default",
    previous: tuple[GatewayConfig, GatewayCredentials] | None = None,
) -> RenderResult:
    """Translate the objects of one namespace into the config a gateway serves.

    `gateway` is the AIGateway whose selector and settings apply; None renders every object
    with default settings (as `aigw serve -f` does without an AIGateway document).
    `previous` is the last rendered pair: an object whose new spec is invalid keeps its last
    valid version there (condition Accepted=False, reason Invalid), so a bad edit never takes
    a working route, tenant or credential out of service. Deleted objects are simply gone.
    """
    result = _Renderer(resources, gateway, namespace, previous).run()
    if gateway is not None and (gateway.kind, gateway.name) not in result.verdicts:
        result.verdicts[(gateway.kind, gateway.name)] = Verdict(
            gateway.kind, gateway.name, gateway.generation, True, REASON_ACCEPTED,
            f"{len(result.config.routes)} route(s), {len(result.config.tenants)} tenant(s) rendered",
        )
    return result
