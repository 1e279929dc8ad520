"""kopf's login: through the official `kubernetes` client, like the operator's own calls.

So kopf's watches and the operator's writes authenticate the same way: kubeconfig exec plugins
(EKS, GKE), OIDC and token refresh work from a laptop, and the in-cluster service account's
projected token is re-read as it rotates.
"""

from __future__ import annotations

from typing import Any

import kopf


@kopf.on.login(retries=3)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    return kopf.login_via_client(**kwargs)
