"""The objects that run the gateway pods: one deleted by hand is put back at once.

Other edits are corrected at the next render (every object carries the hash of what the
operator wants); the Deployment's own status churn does not trigger renders.
"""

from __future__ import annotations

from typing import Any

import kopf

from ..translate import MANAGED_BY


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED_BY)
@kopf.on.event("v1", "services", labels=MANAGED_BY)
async def workload_changed(type: str, namespace: str, memo: kopf.Memo, **_: Any) -> None:
    if type == "DELETED":
        memo.reconciler.request(namespace)
