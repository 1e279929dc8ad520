"""crds/ is generated from aigw_config and must not drift; the schemas are structural."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from aigw_operator.crdgen import render_all

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"


def load_crds() -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(CRDS.glob("*.yaml"))}


def test_committed_crds_match_the_generator():
    files = render_all()
    assert sorted(files) == sorted(p.name for p in CRDS.glob("*.yaml"))
    for name, text in files.items():
        assert (CRDS / name).read_text() == text, f"{name} drifted: run python -m aigw_operator.crdgen"


def test_check_command_reports_drift(tmp_path):
    for name, text in render_all().items():
        (tmp_path / name).write_text(text)
    cmd = [sys.executable, "-m", "aigw_operator.crdgen", "--check", "--out", str(tmp_path)]
    env = {"PYTHONPATH": f"{ROOT / 'gateway'}:{ROOT / 'operator'}"}
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    first = sorted(tmp_path.glob("*.yaml"))[0]
    first.write_text(first.read_text().replace("shortNames", "shortnames"))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "out of date" in out.stderr


def test_five_kinds_in_group_with_status_short_names_and_columns():
    crds = load_crds()
    kinds = {c["spec"]["names"]["kind"]: c for c in crds.values()}
    assert set(kinds) == {"AIGateway", "ModelRoute", "ProviderCredential", "TenantQuota", "GuardrailPolicy"}
    short = {k: c["spec"]["names"]["shortNames"] for k, c in kinds.items()}
    assert short == {"AIGateway": ["aigw"], "ModelRoute": ["mr"], "ProviderCredential": ["pcred"],
                     "TenantQuota": ["tq"], "GuardrailPolicy": ["gp"]}
    for crd in crds.values():
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["spec"]["group"] == "aigw.dev" and crd["spec"]["scope"] == "Namespaced"
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
        assert version["subresources"] == {"status": {}}
        assert any(c["name"] == "Accepted" for c in version["additionalPrinterColumns"])
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["x-kubernetes-preserve-unknown-fields"] is True  # room for kopf's progress


def _walk(node: dict, path: str):
    yield path, node
    for key, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_schemas_are_structural_and_described():
    for name, crd in load_crds().items():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in _walk(schema["properties"]["spec"], "spec"):
            assert "type" in node, f"{name}: {path} has no type (not structural)"
            for banned in ("anyOf", "oneOf", "allOf", "$ref", "additionalProperties"):
                if banned == "additionalProperties" and isinstance(node.get(banned), dict):
                    continue
                assert banned not in node, f"{name}: {path} uses {banned}"
            if path.count(".") <= 2 and not path.endswith(("[]", "{}")):
                assert node.get("description"), f"{name}: {path} has no description for kubectl explain"


def test_cross_field_rules_are_cel_validations():
    crds = load_crds()
    route = crds["aigw.dev_modelroutes.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = [v["rule"] for v in route["x-kubernetes-validations"]]
    assert any("lowest-cost" in r for r in rules) and any("aliases" in r for r in rules)
    assert route["properties"]["targets"]["minItems"] == 1
    assert route["properties"]["retry"]["x-kubernetes-validations"][0]["rule"] == "self.maxBackoffMs >= self.initialBackoffMs"


def test_tenantquota_name_anonymous_is_reserved_by_a_root_cel_rule():
    from aigw_config.kinds import object_problems

    crd = load_crds()["aigw.dev_tenantquotas.yaml"]
    (rule,) = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"]
    assert rule["rule"] == "self.metadata.name != 'anonymous'" and "reserved" in rule["message"]
    assert object_problems("TenantQuota", "anonymous") == [rule["message"]]  # the renderer's twin says the same
    assert object_problems("TenantQuota", "public") == [] and object_problems("ModelRoute", "anonymous") == []
