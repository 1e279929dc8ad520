"""Short names and the category, held against the real API server's discovery.

kubectl resolves `kubectl get pc` to the first resource that claims `pc`; a short name that another
resource already has (PriorityClass's `pc`) silently lists the other kind, and a category equal to
a short name makes `kubectl delete aigw NAME` fail ("you must specify only one resource").
"""

from __future__ import annotations

import json
from collections import defaultdict

import yaml

from .support import ROOT, Cluster

FIVE = {"AIGateway", "ModelRoute", "ProviderCredential", "TenantQuota", "GuardrailPolicy"}


def discovery(cluster: Cluster) -> list[tuple[str, dict]]:
    """(group/version, resource) of every top-level resource the API server serves."""
    out = [("v1", r) for r in json.loads(cluster.kubectl("get", "--raw", "/api/v1").stdout)["resources"]]
    for group in json.loads(cluster.kubectl("get", "--raw", "/apis").stdout)["groups"]:
        gv = group["preferredVersion"]["groupVersion"]
        out += [(gv, r) for r in json.loads(cluster.kubectl("get", "--raw", f"/apis/{gv}").stdout)["resources"]]
    return [(gv, r) for gv, r in out if "/" not in r["name"]]  # subresources are not kubectl names


def test_no_short_name_or_category_clashes_in_discovery(cluster: Cluster, crds: list[str]) -> None:
    claims: dict[str, set[str]] = defaultdict(set)  # a name kubectl resolves -> the resources claiming it
    categories: dict[str, set[str]] = defaultdict(set)
    for gv, r in discovery(cluster):
        owner = f"{r['name']}.{gv.split('/')[0] if '/' in gv else 'core'}"
        for name in {r["name"], r.get("singularName") or "", r["kind"].lower(), *(r.get("shortNames") or [])} - {""}:
            claims[name].add(owner)
        for category in r.get("categories") or []:
            categories[category].add(owner)
    ours = {o for owners in claims.values() for o in owners if o.endswith(".aigw.dev")}
    assert len(ours) == 5
    clashes = {name: sorted(owners) for name, owners in claims.items()
               if len(owners) > 1 and owners & ours}
    assert not clashes, f"names claimed by more than one resource: {clashes}"
    for category, members in categories.items():
        if members & ours:
            assert members == ours, f"category {category!r} mixes aigw kinds with {sorted(members - ours)}"
            assert category not in claims, f"category {category!r} is also the name of {sorted(claims[category])}"


def _examples() -> list[dict]:
    docs: list[dict] = []
    for path in sorted((ROOT / "manifests" / "examples").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kubectl_get_by_short_names_lists_the_five_kinds_and_nothing_else(cluster: Cluster, crds: list[str],
                                                                           namespace: str) -> None:
    cluster.apply(_examples(), namespace=namespace)
    out = cluster.kubectl("get", "aigw,mr,pcred,tq,gp", "-A", "-o", "json")
    assert "Warning" not in out.stderr, out.stderr
    kinds = {item["kind"] for item in json.loads(out.stdout)["items"]}
    assert kinds == FIVE
    table = cluster.kubectl("get", "aigw,mr,pcred,tq,gp", "-n", namespace).stdout
    groups = {line.split("/")[0].split(".", 1)[1] for line in table.splitlines() if "/" in line.split(" ")[0]}
    assert groups == {"aigw.dev"}, table
    by_category = {item["kind"] for item in json.loads(cluster.kubectl("get", "aigw-all", "-n", namespace,
                                                                        "-o", "json").stdout)["items"]}
    assert by_category == FIVE
    # the short name alone, for one object: no clash with the category any more
    cluster.kubectl("delete", "aigw", "aigw", "-n", namespace, "--wait=false")

