"""What `kubectl get` and `kubectl explain` show: columns that point at real fields, descriptions."""

from __future__ import annotations

from pathlib import Path

import yaml

CRDS = Path(__file__).resolve().parents[2] / "crds"


def crds() -> dict[str, dict]:
    out = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        out[crd["spec"]["names"]["kind"]] = crd
    return out


def _schema_at(schema: dict, json_path: str) -> dict | None:
    node = schema
    for part in json_path.lstrip(".").split("."):
        if part.endswith("[]"):  # a list: what follows is a field of its items
            node = (node.get("properties") or {}).get(part[:-2])
            if node is None:
                return None
            node = node.get("items") or {}
            continue
        node = (node.get("properties") or {}).get(part)
        if node is None:
            return None
    return node


def test_columns_show_live_state_and_point_at_real_fields():
    expected = {
        "ModelRoute": ["Model", "Ready", "Served", "RPM", "Err%", "P95", "Age"],
        "AIGateway": ["Replicas", "Ready", "Served", "Config", "Routes", "Age"],
        "ProviderCredential": ["Provider", "Ready", "Health", "RPM", "Err%", "Age"],
        "TenantQuota": ["Ready", "Tokens/min", "Spend", "Remaining", "Throttled", "Age"],
        "GuardrailPolicy": ["Ready", "FailMode", "PII", "Matches", "Age"],
    }
    for kind, crd in crds().items():
        (version,) = crd["spec"]["versions"]
        columns = version["additionalPrinterColumns"]
        default = [c["name"] for c in columns if not c.get("priority")]
        assert default == expected[kind], (kind, default)
        schema = version["schema"]["openAPIV3Schema"]
        for col in columns:
            if col["jsonPath"] == ".metadata.creationTimestamp":
                continue
            path = col["jsonPath"]
            if "[?" in path:  # .status.conditions[?(@.type=="Ready")].status: a field of the list's items
                head, _, tail = path.partition("[?")
                path = head + "[]" + tail.split("]", 1)[1]
            node = _schema_at(schema, path)
            assert node is not None, f"{kind} column {col['name']}: {col['jsonPath']} is not in the schema"
            kube_type = {"integer": "integer", "number": "number", "string": "string"}[col["type"]]
            if col["jsonPath"].startswith(".status") and "[?" not in col["jsonPath"]:
                assert node["type"] == kube_type or (kube_type == "number" and node["type"] == "integer"), (kind, col)


def test_status_fields_are_described_for_kubectl_explain():
    for kind, crd in crds().items():
        status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["description"]
        for name, node in status["properties"].items():
            assert node.get("description"), f"{kind}: status.{name} has no description"
            for sub, child in ((node.get("items") or {}).get("properties") or {}).items():
                assert child.get("description"), f"{kind}: status.{name}[].{sub} has no description"
