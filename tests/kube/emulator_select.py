"""Label and field selectors, parsed and matched like the real API server does."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.kube.emulator_core import ApiError, ResourceType, bad_request

JSON = dict[str, Any]

_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def label_key_error(key: str) -> str | None:
    """Why ``key`` is not a valid label/annotation key (prefix/name), or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return f"prefix part of {key!r} must be a DNS-1123 subdomain"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return (f"name part of {key!r} must consist of alphanumeric characters, '-', '_' or '.',"
                " must start and end with an alphanumeric character, and be at most 63 long")
    return None


def label_value_error(value: Any) -> str | None:
    if not isinstance(value, str):
        return "label values must be strings"
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        return (f"{value!r}: a valid label must be an empty string or consist of alphanumeric "
                "characters, '-', '_' or '.', must start and end with an alphanumeric character,"
                " and be at most 63 characters long")
    return None


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


_SET_RE = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\((.*)\)\s*$")
_OP_RE = re.compile(r"^\s*([^!=<>\s]+)\s*(==|!=|=|<|>)\s*(\S*)\s*$")

Requirement = tuple[str, str, tuple[str, ...]]  # key, operator, values


def parse_label_selector(text: str | None) -> list[Requirement]:
    if not text or not text.strip():
        return []
    reqs: list[Requirement] = []
    for part in _split_top_level(text):
        if not part.strip():
            raise bad_request(f"unable to parse requirement: empty requirement in {text!r}")
        if m := _SET_RE.match(part):
            key, op = m.group(1), m.group(2)
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            if not values:
                raise bad_request(f"unable to parse requirement: {part!r}: empty value set")
        elif m := _OP_RE.match(part):
            key, op, value = m.group(1), m.group(2), m.group(3)
            op = "=" if op == "==" else op
            values = (value,)
            if op in ("<", ">") and not re.fullmatch(r"-?\d+", value):
                raise bad_request(f"unable to parse requirement: {part!r}: integer required")
        elif re.fullmatch(r"\s*!\s*\S+\s*", part):
            key, op, values = part.strip()[1:].strip(), "!", ()
        elif re.fullmatch(r"\s*[^\s!=(),<>]+\s*", part):
            key, op, values = part.strip(), "exists", ()
        else:
            raise bad_request(f"unable to parse requirement: {part!r}")
        if error := label_key_error(key):
            raise bad_request(f"unable to parse requirement: invalid label key {key!r}: {error}")
        for value in values:
            if op not in ("<", ">") and (error := label_value_error(value)):
                raise bad_request(f"unable to parse requirement: invalid label value: {error}")
        reqs.append((key, op, values))
    return reqs


def labels_match(reqs: list[Requirement], labels: dict[str, str]) -> bool:
    for key, op, values in reqs:
        present = key in labels
        value = labels.get(key)
        if op == "=" and not (present and value == values[0]):
            return False
        if op == "!=" and present and value == values[0]:
            return False
        if op == "in" and not (present and value in values):
            return False
        if op == "notin" and present and value in values:
            return False
        if op == "exists" and not present:
            return False
        if op == "!" and present:
            return False
        if op in ("<", ">"):
            if not present or not re.fullmatch(r"-?\d+", value or ""):
                return False
            if op == "<" and not int(value) < int(values[0]):
                return False
            if op == ">" and not int(value) > int(values[0]):
                return False
    return True


# Field selectors: the real server supports only a per-kind set of fields.
def _path_getter(path: str) -> Callable[[JSON], str]:
    def get(obj: JSON) -> str:
        node: Any = obj
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return "" if node is None else str(node)
    return get


_COMMON_FIELDS = ["metadata.name", "metadata.namespace"]
_EXTRA_FIELDS: dict[tuple[str, str], list[str]] = {
    ("", "pods"): ["spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                   "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                   "status.podIP", "status.nominatedNodeName"],
    ("", "events"): ["involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                     "involvedObject.uid", "involvedObject.apiVersion",
                     "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                     "reportingComponent", "source", "type"],
    ("", "secrets"): ["type"],
    ("", "namespaces"): ["status.phase"],
    ("events.k8s.io", "events"): ["regarding.kind", "regarding.namespace", "regarding.name",
                                  "regarding.uid", "reason", "type", "reportingController"],
}

FieldRequirement = tuple[str, str, str]  # field, "=" or "!=", value


def parse_field_selector(text: str | None, rtype: ResourceType) -> list[FieldRequirement]:
    if not text or not text.strip():
        return []
    supported = _COMMON_FIELDS + _EXTRA_FIELDS.get(rtype.key, [])
    reqs: list[FieldRequirement] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*([^!=\s]+)\s*(==|!=|=)\s*(.*?)\s*", part)
        if not m:
            raise bad_request(f"invalid selector: {text!r}; can't understand {part!r}")
        field, op, value = m.group(1), m.group(2), m.group(3)
        if field not in supported:
            raise ApiError(400, "BadRequest", f'field label not supported: {field}')
        reqs.append((field, "=" if op == "==" else op, value))
    return reqs


def fields_match(reqs: list[FieldRequirement], obj: JSON) -> bool:
    for field, op, value in reqs:
        actual = _path_getter(field)(obj)
        if (actual == value) != (op == "="):
            return False
    return True
