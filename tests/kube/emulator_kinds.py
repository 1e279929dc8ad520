"""Kind-specific behaviour of the emulator: Secrets, ConfigMaps, Namespaces and CRDs."""
from __future__ import annotations

import base64
import binascii
from typing import Any

from tests.kube.emulator_core import (
    ResourceType, bad_request, now_rfc3339, version_priority)
from tests.kube.emulator_schema import invalid

JSON = dict[str, Any]
Types = dict[tuple[str, str], ResourceType]
CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")
NAMESPACES = ("", "namespaces")
CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


def _meta(obj: JSON) -> JSON:
    return obj["metadata"]


def prepare_builtin(types: Types, rtype: ResourceType, obj: JSON, old: JSON | None) -> None:
    """Kind-specific server behaviour on create (``old`` is None) and update."""
    if rtype.key == ("", "secrets"):
        data = obj.get("data") or {}
        string_data = obj.pop("stringData", None) or {}
        if not isinstance(data, dict) or not isinstance(string_data, dict):
            raise bad_request("Secret data/stringData must be maps")
        for key, value in string_data.items():
            if not isinstance(value, str):
                raise bad_request(f"Secret stringData[{key}] must be a string")
            data[key] = base64.b64encode(value.encode()).decode()
        for key, value in data.items():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise bad_request(f"Secret data[{key}]: illegal base64 data") from None
        if data:
            obj["data"] = data
        obj.setdefault("type", "Opaque")
    elif rtype.key == ("", "configmaps"):
        for field in ("data", "binaryData"):
            mapping = obj.get(field)
            if mapping is not None and (not isinstance(mapping, dict) or not all(
                    isinstance(v, str) for v in mapping.values())):
                raise bad_request(f"ConfigMap {field} must be a map of strings")
        size = sum(len(k) + len(v) for field in ("data", "binaryData")
                   for k, v in (obj.get(field) or {}).items())
        if size > 1024 * 1024:
            raise invalid(rtype, _meta(obj).get("name", ""), "[]",
                          "Too long: must have at most 1048576 bytes")
    elif rtype.key == NAMESPACES:
        meta = _meta(obj)
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        if old is None:
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
    elif rtype.key == CRDS:
        prepare_crd(types, obj, old)


def prepare_crd(types: Types, obj: JSON, old: JSON | None) -> None:
    """Validate a CRD and set its server-managed finalizer and status."""
    name = _meta(obj).get("name", "")
    crds = types[CRDS]
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise invalid(crds, name, "spec", "Required value")
    names, group = spec.get("names") or {}, spec.get("group") or ""
    versions = spec.get("versions") or []
    if not isinstance(names, dict) or not isinstance(versions, list) or \
            not all(isinstance(v, dict) for v in versions):
        raise bad_request("spec.names must be an object and spec.versions a list of objects")
    causes = []
    if not group or "." not in group:
        causes.append(("spec.group", "Invalid value: should be a domain with at least one dot"))
    if not names.get("plural") or not names.get("kind"):
        causes.append(("spec.names", "Required value: plural and kind are required"))
    elif name != f"{names['plural']}.{group}":
        causes.append(("metadata.name", f'Invalid value: "{name}": must be spec.names.plural'
                                        '+"."+spec.group'))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(("spec.scope", 'Unsupported value: must be "Namespaced" or "Cluster"'))
    if not versions or sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(("spec.versions", "Invalid value: must have exactly one version "
                                        "marked as storage version"))
    for i, version in enumerate(versions):
        if not isinstance((version.get("schema") or {}).get("openAPIV3Schema"), dict):
            causes.append((f"spec.versions[{i}].schema.openAPIV3Schema",
                           "Required value: schemas are required"))
    if (group, names.get("plural")) in types and not types[
            (group, names.get("plural"))].custom:
        causes.append(("spec.names.plural", "Invalid value: conflicts with a built-in"))
    if old is not None and old["spec"].get("scope") != spec.get("scope"):
        causes.append(("spec.scope", "Invalid value: field is immutable"))
    if causes:
        raise crds.invalid(name, causes)
    if old is None:
        finalizers = _meta(obj).setdefault("finalizers", [])
        if CRD_CLEANUP_FINALIZER not in finalizers:
            finalizers.append(CRD_CLEANUP_FINALIZER)
    # The server-managed status, set at once (a real server sets it a moment later).
    old_status = (old or {}).get("status") or {}
    stored = list(old_status.get("storedVersions") or [])
    storage = next(v["name"] for v in versions if v.get("storage"))
    accepted = {"plural": names["plural"], "singular": names.get("singular") or
                names["kind"].lower(), "kind": names["kind"],
                "listKind": names.get("listKind") or names["kind"] + "List"}
    for field in ("shortNames", "categories"):
        if names.get(field):
            accepted[field] = names[field]
    conditions = old_status.get("conditions") or [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
         "message": "no conflicts found", "lastTransitionTime": now_rfc3339()},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
         "message": "the initial names have been accepted",
         "lastTransitionTime": now_rfc3339()}]
    obj["status"] = {"conditions": conditions, "acceptedNames": accepted,
                     "storedVersions": stored + ([storage] if storage not in stored else [])}


def crd_resource_type(crd: JSON) -> ResourceType:
    """The resource type a (validated) CRD defines."""
    spec = crd["spec"]
    names = spec["names"]
    served = sorted((v for v in spec["versions"] if v.get("served")),
                    key=lambda v: version_priority(v["name"]))
    return ResourceType(
        group=spec["group"], versions=[v["name"] for v in served], plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(), kind=names["kind"],
        namespaced=spec["scope"] == "Namespaced",
        status_versions={v["name"] for v in served
                         if "status" in (v.get("subresources") or {})},
        short_names=list(names.get("shortNames") or []),
        categories=list(names.get("categories") or []),
        schemas={v["name"]: v["schema"]["openAPIV3Schema"] for v in served},
        custom=True, crd_name=_meta(crd)["name"])
