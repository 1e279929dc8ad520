"""Kubernetes-shaped objects as plain data, and parsing them from YAML/JSON documents.

`Resource` is what the operator gets from the API server and what `aigw serve -f` reads from
files: the same dict shape, so one translation serves both.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from .base import API_VERSION
from .kinds import SPEC_MODELS, SpecModel


class ConfigError(ValueError):
    """A configuration object that cannot be used; the message names the object and field path."""

    def __init__(self, obj: str, problems: list[str]) -> None:
        self.obj = obj
        self.problems = problems
        super().__init__(f"{obj}: " + "; ".join(problems))


def _loc_to_path(loc: tuple[Any, ...], model: type[SpecModel]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def format_validation_error(exc: ValidationError, prefix: str, model: type[SpecModel]) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        path = _loc_to_path(tuple(err["loc"]), model)
        where = f"{prefix}.{path}" if path else prefix
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        problems.append(f"{where}: {msg}")
    return problems


@dataclass
class Resource:
    """One object of an aigw kind (or a v1 Secret), Kubernetes-shaped."""

    kind: str
    name: str
    namespace: str = "default"
    spec: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    generation: int = 1
    uid: str = ""
    creation_timestamp: str = ""
    data: dict[str, str] = field(default_factory=dict)  # Secrets only: decoded values

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    def parse_spec(self) -> SpecModel:
        model = SPEC_MODELS[self.kind]
        try:
            return model.model_validate(self.spec)
        except ValidationError as exc:
            raise ConfigError(self.ref, format_validation_error(exc, "spec", model)) from None

    @classmethod
    def from_object(cls, obj: Mapping[str, Any], default_namespace: str = "default") -> "Resource":
        """Build from a Kubernetes object dict; raises ConfigError on shape problems."""
        kind = obj.get("kind")
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        ns = meta.get("namespace") or default_namespace
        label = f"{kind or '<no kind>'} {ns}/{name or '<no name>'}"
        if not isinstance(name, str) or not name:
            raise ConfigError(label, ["metadata.name: required"])
        if kind == "Secret":
            if obj.get("apiVersion") != "v1":
                raise ConfigError(label, [f"apiVersion: expected v1, got {obj.get('apiVersion')!r}"])
            return cls(
                kind="Secret",
                name=name,
                namespace=ns,
                labels=dict(meta.get("labels") or {}),
                data=_secret_data(obj, label),
            )
        if kind not in SPEC_MODELS:
            raise ConfigError(label, [f"kind: not an aigw kind (expected one of {', '.join(SPEC_MODELS)}, or Secret)"])
        if obj.get("apiVersion") != API_VERSION:
            raise ConfigError(label, [f"apiVersion: expected {API_VERSION}, got {obj.get('apiVersion')!r}"])
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            raise ConfigError(label, ["spec: required and must be a mapping"])
        return cls(
            kind=kind,
            name=name,
            namespace=ns,
            spec=spec,
            labels=dict(meta.get("labels") or {}),
            generation=int(meta.get("generation") or 1),
            uid=str(meta.get("uid") or ""),
            creation_timestamp=str(meta.get("creationTimestamp") or ""),
        )


def _secret_data(obj: Mapping[str, Any], label: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (obj.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(str(value), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigError(label, [f"data.{key}: not valid base64-encoded UTF-8"]) from None
    for key, value in (obj.get("stringData") or {}).items():
        out[key] = str(value)
    return out


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What and where, never the offending text: PyYAML's message quotes the line, which in a
    Secret is the secret value itself (it would reach logs and /readyz)."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if not problem:
        return "the text is not parseable YAML"
    context = getattr(exc, "context", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{context + ': ' if context else ''}{problem}{where}"


def parse_documents(text: str, source: str, default_namespace: str = "default") -> list[Resource]:
    """Parse a multi-document YAML (or JSON) text into resources; skips empty documents and Lists' wrappers."""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"invalid YAML: {_yaml_problem(exc)}"]) from None
    out: list[Resource] = []
    for doc in _flatten(docs):
        if not isinstance(doc, dict):
            raise ConfigError(source, ["each document must be a mapping (a Kubernetes object)"])
        out.append(Resource.from_object(doc, default_namespace))
    return out


def _flatten(docs: Iterable[Any]) -> Iterable[Any]:
    for doc in docs:
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            yield from _flatten(doc["items"])
        else:
            yield doc
