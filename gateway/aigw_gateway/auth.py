"""Tenant authentication: the API key from whichever header the SDK sends, compared as a hash."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request

from aigw_config.config import TenantConfig

from .errors import AuthenticationFailed
from .runtime import Runtime


def api_key_from(headers: Headers) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return headers.get("x-api-key") or headers.get("x-goog-api-key") or None


def authenticate(runtime: Runtime, headers: Headers) -> TenantConfig:
    key = api_key_from(headers)
    if key is None:
        if runtime.anonymous is not None:  # the TenantQuota named by allowAnonymous: its limits apply
            return runtime.anonymous
        raise AuthenticationFailed(
            "missing API key: send it as 'Authorization: Bearer <key>', 'x-api-key' or 'x-goog-api-key'"
        )
    tenant = runtime.tenant_for_key(key)
    if tenant is None:
        raise AuthenticationFailed("invalid API key")
    return tenant


_SCOPE_KEY = "aigw.tenant"


def authenticate_request(runtime: Runtime, request: Request) -> TenantConfig:
    """`authenticate` once per request: the body reader authenticates before reading, and the
    flow reuses its answer (the same runtime, so the same key table) instead of hashing the key
    again. A failure is not remembered: it raises every time."""
    scope = request.scope
    done = scope.get(_SCOPE_KEY)
    if done is not None and done[0] is runtime:
        return done[1]
    tenant = authenticate(runtime, request.headers)
    scope[_SCOPE_KEY] = (runtime, tenant)
    return tenant
