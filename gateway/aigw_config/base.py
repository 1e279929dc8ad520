"""Shared pydantic base classes and small field types of the contract."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "aigw.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# RFC 1123 DNS label/subdomain, as Kubernetes names are.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"

ObjectName = Annotated[
    str,
    Field(min_length=1, max_length=253, pattern=NAME_PATTERN, description="Name of an object in the same namespace."),
]


class SpecModel(BaseModel):
    """Base for CR spec parts: camelCase on the wire, unknown fields rejected.

    The API server prunes unknown fields silently; `aigw serve -f` reads the same YAML
    without an API server, so a typo must fail loudly there.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )


class StatusModel(BaseModel):
    """Base for status parts: camelCase, tolerant of fields written by others (kopf, newer operators)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class SecretKeyRef(SpecModel):
    """A key inside a v1 Secret in the same namespace."""

    name: ObjectName = Field(description="Name of the Secret in the object's namespace.")
    key: str = Field(
        default="apiKey",
        min_length=1,
        max_length=253,
        description="Key inside the Secret's data.",
    )
