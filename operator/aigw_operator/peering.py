"""kopf's peering objects, for running operator replicas in HA (one active, the others paused).

    python -m aigw_operator.peering [--namespace NS] [--name NAME]   # print the YAML to apply

prints kopf's two peering CRDs (kopf.dev/v1 KopfPeering and ClusterKopfPeering, as kopf's
documentation defines them) and the peering object the replicas share; run the replicas with
`aigw operator --peering NAME` (instead of `--standalone`). kopf keeps each replica's keep-alive
in the object's status; the replica with the highest priority works, the others wait.
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml

PEERING_GROUP = "kopf.dev"
DEFAULT_NAME = "aigw-operator"


def _crd(kind: str, plural: str, scope: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{PEERING_GROUP}"},
        "spec": {
            "scope": scope,
            "group": PEERING_GROUP,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [{
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }},
            }],
        },
    }


PEERING_CRDS: tuple[dict[str, Any], ...] = (
    _crd("ClusterKopfPeering", "clusterkopfpeerings", "Cluster"),
    _crd("KopfPeering", "kopfpeerings", "Namespaced"),
)


def peering_object(name: str = DEFAULT_NAME, namespace: str | None = None) -> dict[str, Any]:
    """The object the replicas share: namespaced when the operator watches given namespaces
    (`--namespace`, one object in each), cluster-wide with `--all-namespaces`."""
    if namespace:
        return {"apiVersion": f"{PEERING_GROUP}/v1", "kind": "KopfPeering",
                "metadata": {"name": name, "namespace": namespace}}
    return {"apiVersion": f"{PEERING_GROUP}/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aigw_operator.peering", description=__doc__.splitlines()[0])
    parser.add_argument("--name", default=DEFAULT_NAME, help="peering name (aigw operator --peering NAME)")
    parser.add_argument("--namespace", help="a watched namespace (namespaced operators); cluster-wide otherwise")
    args = parser.parse_args(argv)
    print(yaml.safe_dump_all([*PEERING_CRDS, peering_object(args.name, args.namespace)], sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
