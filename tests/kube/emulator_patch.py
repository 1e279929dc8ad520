"""Patch formats for the emulator: JSON merge patch (RFC 7386) and JSON patch (RFC 6902).

Strategic merge patch is approximated by the merge patch (lists are replaced, not merged by
their patch-merge keys; ``$patch``/``$retainKeys``/``$setElementOrder`` directives are dropped).
"""
from __future__ import annotations

import copy
from typing import Any


class PatchError(Exception):
    """A patch that cannot be applied. ``malformed`` means the document itself is bad (400);
    otherwise it is well-formed but does not apply to the object (422)."""

    def __init__(self, message: str, *, malformed: bool = False) -> None:
        super().__init__(message)
        self.malformed = malformed


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386. Returns a new value; the inputs are not modified."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strip_strategic_directives(patch: Any) -> Any:
    """Drop ``$``-prefixed strategic-merge-patch directives so the rest applies as a merge patch."""
    if isinstance(patch, dict):
        return {k: strip_strategic_directives(v) for k, v in patch.items()
                if not k.startswith("$")}
    if isinstance(patch, list):
        return [strip_strategic_directives(v) for v in patch]
    return patch


def json_equal(a: Any, b: Any) -> bool:
    """JSON value equality (unlike ``==``, ``True`` is not ``1`` and ``1.0`` equals ``1``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _parse_pointer(pointer: Any) -> list[str]:
    if not isinstance(pointer, str):
        raise PatchError(f"invalid JSON pointer: {pointer!r}", malformed=True)
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer (must start with '/'): {pointer!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def _index(container: list, token: str, pointer: str, *, allow_end: bool) -> int:
    if allow_end and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f"invalid array index {token!r} in {pointer}")
    idx = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if idx > limit:
        raise PatchError(f"array index {idx} out of bounds in {pointer}")
    return idx


def _resolve_parent(doc: Any, parts: list[str], pointer: str) -> Any:
    node = doc
    for token in parts[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"path {pointer} does not exist: missing {token!r}")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, pointer, allow_end=False)]
        else:
            raise PatchError(f"path {pointer} does not exist: cannot descend into a scalar")
    return node


def _get(doc: Any, pointer: str) -> Any:
    parts = _parse_pointer(pointer)
    if not parts:
        return doc
    parent = _resolve_parent(doc, parts, pointer)
    token = parts[-1]
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"path {pointer} does not exist")
        return parent[token]
    if isinstance(parent, list):
        return parent[_index(parent, token, pointer, allow_end=False)]
    raise PatchError(f"path {pointer} does not exist")


def _add(doc: Any, pointer: str, value: Any) -> Any:
    parts = _parse_pointer(pointer)
    if not parts:
        return value
    parent = _resolve_parent(doc, parts, pointer)
    token = parts[-1]
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, pointer, allow_end=True), value)
    else:
        raise PatchError(f"path {pointer}: cannot add to a scalar")
    return doc


def _remove(doc: Any, pointer: str) -> tuple[Any, Any]:
    parts = _parse_pointer(pointer)
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent = _resolve_parent(doc, parts, pointer)
    token = parts[-1]
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"path {pointer} does not exist: cannot remove")
        return doc, parent.pop(token)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, token, pointer, allow_end=False))
    raise PatchError(f"path {pointer} does not exist: cannot remove")


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902. Returns a new document; the input is not modified."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations", malformed=True)
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation: {op!r}", malformed=True)
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"JSON patch operation {kind!r} needs a 'value'", malformed=True)
        if kind in ("move", "copy") and "from" not in op:
            raise PatchError(f"JSON patch operation {kind!r} needs a 'from'", malformed=True)
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)  # must exist
            if _parse_pointer(path):
                doc, _ = _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "move":
            src = op["from"]
            if path != src and path.startswith(src + "/"):
                raise PatchError(f"cannot move {src} into its own child {path}")
            doc, value = _remove(doc, src)
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            if not json_equal(_get(doc, path), op["value"]):
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"unknown JSON patch operation {kind!r}", malformed=True)
    return doc
