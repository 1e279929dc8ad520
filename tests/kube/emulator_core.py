"""Shared pieces of the Kubernetes API-server emulator: errors, resource types, helpers.

See :mod:`tests.kube.emulator` for the overview of what is emulated.
"""
from __future__ import annotations

import dataclasses
import datetime
import re
from typing import Any

JSON = dict[str, Any]

# Verbs we actually implement (no deletecollection, no proxy/exec/etc.).
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
STATUS_VERBS = ["get", "patch", "update"]


class ApiError(Exception):
    """An error that is rendered as a ``kind: Status`` response, like the real API server."""

    def __init__(self, code: int, reason: str, message: str, *,
                 details: JSON | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> JSON:
        body: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource",
                    details={})


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class ResourceType:
    """One kind of object the emulator stores (a built-in or a CRD-defined one).

    Objects are stored once per (group, plural); every served version sees the same data with
    its own ``apiVersion`` (CRD conversion strategy ``None``).
    """
    group: str
    versions: list[str]                  # served versions, preferred first
    plural: str
    singular: str
    kind: str
    namespaced: bool
    status_versions: set[str] = dataclasses.field(default_factory=set)  # with a /status
    short_names: list[str] = dataclasses.field(default_factory=list)
    categories: list[str] = dataclasses.field(default_factory=list)
    schemas: dict[str, JSON] = dataclasses.field(default_factory=dict)  # version -> openAPIV3Schema
    custom: bool = False                 # defined by a CRD
    crd_name: str | None = None

    def has_status(self, version: str) -> bool:
        return version in self.status_versions

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def group_resource(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    def details(self, name: str, kind: str | None = None) -> JSON:
        # Like the real server: "kind" holds the resource (plural); "group" is omitted if empty.
        details: JSON = {"name": name, "kind": kind or self.plural}
        if self.group:
            details["group"] = self.group
        return details

    def not_found(self, name: str) -> ApiError:
        return ApiError(404, "NotFound", f'{self.group_resource} "{name}" not found',
                        details=self.details(name))

    def already_exists(self, name: str) -> ApiError:
        return ApiError(409, "AlreadyExists", f'{self.group_resource} "{name}" already exists',
                        details=self.details(name))

    def conflict(self, name: str, why: str) -> ApiError:
        return ApiError(409, "Conflict",
                        f'Operation cannot be fulfilled on {self.group_resource} "{name}": {why}',
                        details=self.details(name))

    def invalid(self, name: str, causes: list[tuple[str, str]]) -> ApiError:
        """422 Invalid; ``causes`` are ``(field_path, message)`` pairs."""
        texts = [f"{field}: {msg}" if field else msg for field, msg in causes]
        joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
        return ApiError(
            422, "Invalid", f'{self.qualified_kind} "{name}" is invalid: {joined}',
            details={**self.details(name, self.kind),
                     "causes": [{"reason": "FieldValueInvalid", "message": msg, "field": field}
                                for field, msg in causes]})


def _builtin(group: str, version: str, plural: str, kind: str, namespaced: bool = True,
             short: tuple[str, ...] = (), status: bool = False, singular: str = "") -> ResourceType:
    return ResourceType(group=group, versions=[version], plural=plural, kind=kind,
                        singular=singular or kind.lower(), namespaced=namespaced,
                        status_versions={version} if status else set(),
                        short_names=list(short))


def builtin_types() -> list[ResourceType]:
    return [
        _builtin("", "v1", "namespaces", "Namespace", namespaced=False, short=("ns",), status=True),
        _builtin("", "v1", "configmaps", "ConfigMap", short=("cm",)),
        _builtin("", "v1", "secrets", "Secret"),
        _builtin("", "v1", "events", "Event", short=("ev",)),
        _builtin("", "v1", "services", "Service", short=("svc",), status=True),
        _builtin("", "v1", "serviceaccounts", "ServiceAccount", short=("sa",)),
        _builtin("", "v1", "pods", "Pod", short=("po",), status=True),
        _builtin("", "v1", "endpoints", "Endpoints", short=("ep",)),
        _builtin("apps", "v1", "deployments", "Deployment", short=("deploy",), status=True),
        _builtin("coordination.k8s.io", "v1", "leases", "Lease"),
        _builtin("events.k8s.io", "v1", "events", "Event", short=("ev",)),
        _builtin("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
        _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role"),
        _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
        _builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole",
                 namespaced=False),
        _builtin("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding",
                 namespaced=False),
        _builtin("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",),
                 status=True),
        _builtin("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
                 short=("hpa",), status=True),
        _builtin("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                 "CustomResourceDefinition", namespaced=False, short=("crd", "crds"),
                 status=True),
    ]


_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key implementing Kubernetes' version priority (v2 > v1 > v1beta2 > v1alpha1 > foo)."""
    m = _VERSION_RE.match(version)
    if not m:
        return (3, 0, 0, version)          # non-kube-like versions last, alphabetically
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor, "")
