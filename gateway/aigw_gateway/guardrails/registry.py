"""Compiled guardrail policies of a gateway process, reused across config swaps.

Policies are compiled once per (name, spec); a config swap that keeps a policy keeps its
compiled object and its counters, so the pod report's counts survive unrelated changes.
"""

from __future__ import annotations

from collections.abc import Callable

from aigw_config.config import GatewayConfig
from aigw_config.kinds import GuardrailPolicySpec

from .chain import combine
from .policy import CompiledPolicy, compile_policy


class PolicyRegistry:
    """`hash_key` is the PII `hash` action's HMAC key: bytes, or a callable returning the current
    gateway's key (it comes with the credentials, so it can change at a config swap)."""

    def __init__(self, hash_key: bytes | Callable[[], bytes] = b"") -> None:
        self._hash_key = hash_key
        self._compiled: dict[tuple[str, str, bytes], CompiledPolicy] = {}
        self._combined: dict[tuple[str | None, str | None, str, bytes], object] = {}

    @property
    def hash_key(self) -> bytes:
        return self._hash_key() if callable(self._hash_key) else self._hash_key

    def policy(self, name: str, spec: GuardrailPolicySpec, hash_key: bytes | None = None) -> CompiledPolicy:
        hash_key = self.hash_key if hash_key is None else hash_key
        key = (name, spec.model_dump_json(), hash_key)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = compile_policy(name, spec, hash_key=hash_key)
        return compiled

    def for_request(self, config: GatewayConfig, route_policy: str | None, tenant_policy: str | None):
        """The combined policy of a route and a tenant (None when neither has one)."""
        if route_policy is None and tenant_policy is None:
            return None
        hash_key = self.hash_key
        key = (route_policy, tenant_policy, config.hash, hash_key)
        combined = self._combined.get(key)
        if combined is None:
            names = [n for n in dict.fromkeys((route_policy, tenant_policy)) if n is not None]
            combined = combine([self.policy(n, config.guardrails[n], hash_key) for n in names])
            if len(self._combined) > 256:
                self._combined.clear()
            self._combined[key] = combined
        return combined

    def counts(self) -> dict[str, dict[str, int]]:
        """policy -> "detector/action" -> matches, summed over every compiled version of the policy."""
        out: dict[str, dict[str, int]] = {}
        for (name, _, _), compiled in self._compiled.items():
            bucket = out.setdefault(name, {})
            for (detector, action), n in compiled.counts.items():
                key = f"{detector}/{action}"
                bucket[key] = bucket.get(key, 0) + n
        return out
