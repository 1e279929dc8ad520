"""Object validation for the emulator: ObjectMeta checks for every kind, and the CRD
structural-schema pipeline for custom resources (defaulting -> pruning -> validation).

The CRD ``openAPIV3Schema`` is treated as JSON Schema draft 4 with the OpenAPI/Kubernetes
extensions mapped as follows:

* ``nullable: true`` allows ``null``; a ``null`` in a non-nullable field with a ``default`` is
  dropped and defaulted (as the real server does).
* ``default`` values are applied to absent fields (only below existing parents).
* Unknown fields are *pruned* (silently dropped, reported in a ``Warning`` header), unless a
  node has ``x-kubernetes-preserve-unknown-fields: true`` ("anything goes below here") or
  ``additionalProperties``. ``apiVersion``/``kind``/``metadata`` are never pruned.
* ``x-kubernetes-int-or-string`` allows integers and strings; ``x-kubernetes-embedded-resource``
  keeps ``apiVersion``/``kind``/``metadata``; all other ``x-kubernetes-*`` keys are ignored.
* ``format`` is not checked. CEL rules (``x-kubernetes-validations``) are NOT evaluated.

Schema validation needs the ``jsonschema`` package; without it only defaulting and pruning
happen.
"""
from __future__ import annotations

import copy
import json
import re
from typing import Any

from tests.kube.emulator_core import ApiError, ResourceType, bad_request
from tests.kube.emulator_select import label_key_error, label_value_error

try:
    import jsonschema
    import jsonschema.validators
except ImportError:  # pragma: no cover - depends on the environment
    jsonschema = None

JSON = dict[str, Any]

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _name_error(rtype: ResourceType, name: str) -> str | None:
    if rtype.key == ("", "namespaces"):
        ok = len(name) <= 63 and _DNS_LABEL.match(name)
        what = "a lowercase RFC 1123 label"
    elif rtype.key == ("", "services"):
        ok = len(name) <= 63 and _DNS_1035.match(name)
        what = "a DNS-1035 label"
    elif rtype.group == "rbac.authorization.k8s.io":
        ok = name not in (".", "..") and "/" not in name and "%" not in name
        what = "a valid path segment name"
    else:
        ok = len(name) <= 253 and _DNS_SUBDOMAIN.match(name)
        what = "a lowercase RFC 1123 subdomain"
    return None if ok else f'Invalid value: "{name}": must be {what}'


OBJECT_META_FIELDS = {
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields"}
MAX_ANNOTATIONS_BYTES = 256 * 1024


def prune_metadata(obj: JSON) -> list[str]:
    """Drop fields ObjectMeta does not have (like the real server's typed decoding)."""
    meta = obj["metadata"]
    unknown = [key for key in meta if key not in OBJECT_META_FIELDS]
    for key in unknown:
        del meta[key]
    return [f'unknown field "metadata.{key}"' for key in unknown]


def validate_metadata(rtype: ResourceType, obj: JSON) -> None:
    """ObjectMeta checks shared by all kinds. Wrong JSON types -> 400, bad values -> 422."""
    meta = obj["metadata"]
    name = meta.get("name") or ""
    causes: list[tuple[str, str]] = []
    if not name:
        causes.append(("metadata.name", "Required value: name or generateName is required"))
    elif (error := _name_error(rtype, name)):
        causes.append(("metadata.name", error))
    for field in ("labels", "annotations"):
        mapping = meta.get(field)
        if mapping is None:
            continue
        if not isinstance(mapping, dict) or not all(
                isinstance(v, str) for v in mapping.values()):
            raise bad_request(f"metadata.{field} must be a map of strings to strings")
        for key, value in mapping.items():
            if (error := label_key_error(key)):
                causes.append((f"metadata.{field}", f'Invalid value: "{key}": {error}'))
            if field == "labels" and (error := label_value_error(value)):
                causes.append((f"metadata.labels", f"Invalid value: {error}"))
    annotations = meta.get("annotations") or {}
    if sum(len(k) + len(v) for k, v in annotations.items()) > MAX_ANNOTATIONS_BYTES:
        causes.append(("metadata.annotations",
                       f"Too long: must have at most {MAX_ANNOTATIONS_BYTES} bytes"))
    finalizers = meta.get("finalizers")
    if finalizers is not None and (not isinstance(finalizers, list)
                                   or not all(isinstance(f, str) for f in finalizers)):
        raise bad_request("metadata.finalizers must be a list of strings")
    owners = meta.get("ownerReferences")
    if owners is not None:
        if not isinstance(owners, list) or not all(isinstance(o, dict) for o in owners):
            raise bad_request("metadata.ownerReferences must be a list of objects")
        for i, owner in enumerate(owners):
            for field in ("apiVersion", "kind", "name", "uid"):
                if not owner.get(field):
                    causes.append((f"metadata.ownerReferences[{i}].{field}", "Required value"))
        if sum(1 for o in owners if o.get("controller")) > 1:
            causes.append(("metadata.ownerReferences",
                           "Invalid value: only one reference can have Controller set to true"))
    if causes:
        raise rtype.invalid(name, causes)


# --- custom resources ------------------------------------------------------------------------

def _field_path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def apply_defaults(value: Any, schema: JSON | None) -> None:
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if key in value and value[key] is None and not sub.get("nullable"):
                del value[key]
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
        for key, item in value.items():
            if key in props:
                apply_defaults(item, props[key])
            elif isinstance(schema.get("additionalProperties"), dict):
                apply_defaults(item, schema["additionalProperties"])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])


def prune(value: Any, schema: JSON | None, path: list, dropped: list[str], *,
          root: bool = False) -> None:
    """Drop fields unknown to the structural schema, recording their paths in ``dropped``."""
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        keep_unknown = bool(schema.get("x-kubernetes-preserve-unknown-fields")) or addl is True
        always = {"apiVersion", "kind", "metadata"} if (
            root or schema.get("x-kubernetes-embedded-resource")) else set()
        for key in list(value):
            if key in always:
                continue
            if key in props:
                prune(value[key], props[key], path + [key], dropped)
            elif isinstance(addl, dict):
                prune(value[key], addl, path + [key], dropped)
            elif not keep_unknown:
                del value[key]
                dropped.append(_field_path(path + [key]))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            prune(item, schema["items"], path + [i], dropped)


_IGNORED_KEYS = {"nullable", "format", "default", "example", "externalDocs", "description"}


def to_json_schema(schema: Any) -> Any:
    """Map a Kubernetes openAPIV3Schema node to a plain draft-4 JSON Schema node."""
    if not isinstance(schema, dict):
        return schema
    out: JSON = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key in _IGNORED_KEYS:
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: to_json_schema(v) for k, v in value.items()}
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(v) for v in value]
        elif key in ("items", "not", "additionalProperties"):
            out[key] = ([to_json_schema(v) for v in value] if isinstance(value, list)
                        else to_json_schema(value))
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        either = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
        out = {"allOf": [out, either]} if "anyOf" in out else {**out, **either}
    if schema.get("nullable"):
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = types + ["null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = list(out["enum"]) + [None]
    return out


def _validator_class() -> Any:
    base = jsonschema.Draft4Validator
    # Like Kubernetes, accept 1.0 as an integer.
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _, v: (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer()))
    return jsonschema.validators.extend(base, type_checker=checker)


def _describe(error: Any) -> tuple[str, str]:
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = [k for k in error.validator_value
                   if isinstance(error.instance, dict) and k not in error.instance]
        return _field_path(path + [missing[0] if missing else "?"]), "Required value"
    value = json.dumps(error.instance, default=str)
    if len(value) > 80:
        value = value[:77] + "..."
    return _field_path(path) or "<root>", f"Invalid value: {value}: {error.message}"


def prepare_custom_object(rtype: ResourceType, version: str, obj: JSON) -> list[str]:
    """Default, prune and validate ``obj`` in place. Returns warnings (pruned fields)."""
    schema = rtype.schemas.get(version)
    if not schema:
        return []
    apply_defaults(obj, schema)
    dropped: list[str] = []
    prune(obj, schema, [], dropped, root=True)
    if jsonschema is not None:
        validator = _validator_class()(to_json_schema(schema))
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
        if errors:
            name = obj.get("metadata", {}).get("name", "")
            raise rtype.invalid(name, [_describe(e) for e in errors])
    return [f'unknown field "{path}"' for path in dropped]


def check_kind(rtype: ResourceType, version: str, obj: JSON) -> None:
    """Body ``apiVersion``/``kind`` must match the URL (filled in for built-ins if absent)."""
    expected_av, expected_kind = rtype.api_version(version), rtype.kind
    if rtype.custom and (not obj.get("apiVersion") or not obj.get("kind")):
        raise bad_request("Object 'Kind' is missing in the request body")
    av, kind = obj.setdefault("apiVersion", expected_av), obj.setdefault("kind", expected_kind)
    if av != expected_av or kind != expected_kind:
        raise bad_request(f"the API version in the data ({av}) or kind ({kind}) does not match "
                          f"the expected API version ({expected_av}) and kind ({expected_kind})")


def invalid(rtype: ResourceType, name: str, field: str, message: str) -> ApiError:
    return rtype.invalid(name, [(field, message)])
