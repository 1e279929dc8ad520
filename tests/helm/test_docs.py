"""Docs that are generated stay in sync; hand-written docs say what the chart does."""

from __future__ import annotations

import os
import re

import pytest

from .support import ROOT, load_script
from .test_rbac import CLUSTER_ONLY_GRANTS, CLUSTER_PEERING_GRANTS, NAMESPACED_GRANTS, NAMESPACED_PEERING_GRANTS

DOCS = ["docs/install.md", "docs/operations.md", "docs/security.md", "docs/crd-reference.md", "README.md"]


def test_crd_reference_is_regenerated_from_the_crds():
    wanted = load_script("gen-crd-docs").render()
    assert (ROOT / "docs" / "crd-reference.md").read_text() == wanted, "run scripts/gen-crd-docs"


def test_crd_reference_covers_every_field_and_rule():
    import yaml

    doc = (ROOT / "docs" / "crd-reference.md").read_text()
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        kind = crd["spec"]["names"]["kind"]
        assert f"## {kind}" in doc

        def walk(node, prefix):
            for name, child in (node.get("properties") or {}).items():
                assert f"`{prefix}.{name}`" in doc, f"{kind}: {prefix}.{name} undocumented"
                walk(child, f"{prefix}.{name}")
                if "items" in child:
                    walk(child["items"], f"{prefix}.{name}[]")
            for rule in node.get("x-kubernetes-validations") or []:
                assert rule["message"] in doc

        walk(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"], "spec")


@pytest.mark.parametrize("doc", DOCS)
def test_relative_links_resolve(doc):
    text = re.sub(r"`[^`\n]*`", "", (ROOT / doc).read_text())  # code spans hold regexes, not links
    base = (ROOT / doc).parent
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"^[a-z]+:", target):
            continue
        assert (base / target).exists(), f"{doc} links to missing {target}"


def test_readme_install_section_leads_from_install_to_a_request_and_status():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("<!-- install:start -->")[1].split("<!-- install:end -->")[0]
    for needle in ("helm install aigw helm/aigw", "kubectl apply --server-side -f manifests/install.yaml",
                   "kubectl apply -n ai -f manifests/examples/", "port-forward service/aigw",
                   'base_url="http://127.0.0.1:8080/v1"', "kubectl get aigw,mr,pcred,tq,gp", "docs/install.md"):
        assert needle in section, needle


def test_the_tenant_key_in_the_docs_is_the_examples_key():
    example = (ROOT / "manifests" / "examples" / "tenant-with-quota-and-budget.yaml").read_text()
    key = re.search(r"apiKey: (\S+)", example).group(1)
    for doc in ("README.md", "docs/install.md"):
        assert f'api_key="{key}"' in (ROOT / doc).read_text(), doc


def test_security_doc_lists_exactly_the_operator_rules():
    doc = (ROOT / "docs" / "security.md").read_text()
    section = doc.split("## The operator's permissions")[1].split("###")[0]
    documented = set()
    for row in re.findall(r"^\| `([^`]*)` \| (.+?) \| (.+?) \|", section, re.M):
        group, resources, verbs = row
        group = "" if group == "\"\"" else group
        if "/status" in resources:
            names = [f"{k}/status" for k in ("aigateways", "modelroutes", "providercredentials", "tenantquotas",
                                              "guardrailpolicies")]
        else:
            names = re.findall(r"`([a-z/]+)`", resources)
        for name in names:
            for verb in (v.strip() for v in verbs.split(",")):
                documented.add((group, name, verb))
    assert documented == NAMESPACED_GRANTS | CLUSTER_ONLY_GRANTS | CLUSTER_PEERING_GRANTS | NAMESPACED_PEERING_GRANTS


def test_generation_scripts_exist_and_are_executable():
    for name in ("get-helm", "sync-chart-crds", "gen-manifests", "gen-crd-docs"):
        path = ROOT / "scripts" / name
        assert path.is_file() and os.access(path, os.X_OK), name
        assert name in (ROOT / "docs" / "install.md").read_text() or name == "get-helm"
