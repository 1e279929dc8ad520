"""The CRDs on a real API server: applied server-side, Established, served."""

from __future__ import annotations

from .support import Cluster


def test_crds_are_established_and_served(cluster: Cluster, crds: list[str]) -> None:
    assert len(crds) == 5
    for name in crds:
        crd = cluster.get_json(f"crd/{name}")
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True", (name, conditions)
        assert conditions.get("NamesAccepted") == "True", (name, conditions)
