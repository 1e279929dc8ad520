"""Secrets: a referenced Secret that appears, changes or goes re-renders its namespace."""

from __future__ import annotations

from typing import Any

import kopf

from ..translate import MANAGED_BY


def _not_ours(labels: kopf.Labels, **_: Any) -> bool:
    return labels.get("app.kubernetes.io/managed-by") != MANAGED_BY["app.kubernetes.io/managed-by"]


@kopf.on.event("v1", "secrets", when=_not_ours)
async def secret_changed(namespace: str, memo: kopf.Memo, **_: Any) -> None:
    if namespace in memo.reconciler.gateway_namespaces:
        memo.reconciler.request(namespace)


@kopf.on.event("v1", "configmaps", labels=MANAGED_BY)
@kopf.on.event("v1", "secrets", labels=MANAGED_BY)
async def rendered_object_changed(type: str, namespace: str, memo: kopf.Memo, **_: Any) -> None:
    # Someone deleted or edited what we render: put it back.
    if type in ("DELETED", "MODIFIED"):
        memo.reconciler.request(namespace)
