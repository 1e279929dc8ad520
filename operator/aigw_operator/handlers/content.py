"""Handlers of ModelRoute, ProviderCredential, TenantQuota and GuardrailPolicy.

The four kinds behave alike: a change (or a resumed object at start-up) is validated and
requests a render of its namespace; a deletion requests one too, so the object leaves the
rendered config. kopf's error types are the retry policy: an invalid spec is a
PermanentError (never retried; the Accepted condition says why), a Secret that does not
exist yet is a TemporaryError (retried until it appears; a Secret event renders at once).
"""

from __future__ import annotations

from typing import Any

import kopf

from aigw_config.base import GROUP, VERSION
from aigw_config.registry import CONTENT_KINDS, KINDS
from aigw_config.resources import ConfigError, Resource

SECRET_RETRY_SECONDS = 30


async def check_object(kind: str, body: kopf.Body, namespace: str, memo: kopf.Memo) -> None:
    reconciler = memo.reconciler
    reconciler.request(namespace)
    if not reconciler.worker_active and not await reconciler.has_gateways(namespace):
        # No AIGateway's daemon will render this namespace (the objects say NotSelected): render
        # here, within kopf's handler, which kopf pauses and retries.
        if not await reconciler.render_inline(namespace):
            raise kopf.TemporaryError(f"render of namespace {namespace} failed", delay=SECRET_RETRY_SECONDS)
    try:
        Resource.from_object(dict(body), namespace).parse_spec()
    except ConfigError as exc:
        raise kopf.PermanentError(str(exc)) from None
    problem = reconciler.policy.base_url_problem(dict(body.get("spec") or {})) if kind == "ProviderCredential" else None
    if problem:
        raise kopf.PermanentError(problem)
    missing = await memo.reconciler.missing_secrets(kind, namespace, dict(body.get("spec") or {}))
    if missing:
        raise kopf.TemporaryError(f"waiting for Secret(s) {', '.join(missing)}", delay=SECRET_RETRY_SECONDS)


def _register(kind: str) -> None:
    plural = KINDS[kind].plural

    @kopf.on.resume(GROUP, VERSION, plural, id=f"check-{plural}")
    @kopf.on.create(GROUP, VERSION, plural, id=f"check-{plural}")
    @kopf.on.update(GROUP, VERSION, plural, id=f"check-{plural}")
    async def check(body: kopf.Body, namespace: str, memo: kopf.Memo, **_: Any) -> None:
        await check_object(kind, body, namespace, memo)

    @kopf.on.event(GROUP, VERSION, plural, id=f"deleted-{plural}")
    async def deleted(type: str, namespace: str, memo: kopf.Memo, **_: Any) -> None:
        if type == "DELETED":
            memo.reconciler.request(namespace)


for _kind in CONTENT_KINDS:
    _register(_kind)
