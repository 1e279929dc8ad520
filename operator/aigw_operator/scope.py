"""Which namespaces this kopf run serves, read from kopf's own command line.

With plain namespace names (`--namespace team-a --namespace team-b`, the chart's watchNamespaces
mode) kopf would still list and watch Namespaces and CustomResourceDefinitions cluster-wide to
follow patterns and late CRDs, which that mode's RBAC rightly does not grant: kopf retries every
403 with backoff, logging errors, before it falls back to the names given. So with plain names the
operator switches kopf's scanning off (`settings.scanning.disabled`): it serves exactly those
namespaces and the CRDs present at its start (install the CRDs first; they are in the chart).
"""

from __future__ import annotations

import click
from kopf._cogs.structs.references import select_specific_namespaces


def exact_namespaces() -> tuple[str, ...]:
    """The namespaces of `kopf run --namespace …` when every one is a plain name; () otherwise
    (cluster-wide, patterns such as `team-*`, or not started from kopf's command line)."""
    ctx = click.get_current_context(silent=True)
    params = ctx.params if ctx is not None else {}
    namespaces = tuple(params.get("namespaces") or ())
    if params.get("clusterwide") or not namespaces:
        return ()
    exact = tuple(select_specific_namespaces(namespaces))
    return namespaces if len(exact) == len(namespaces) else ()
