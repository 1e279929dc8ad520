"""aigw_config: the versioned, Kubernetes-free contract shared by the operator and the gateway.

It imports pydantic (and PyYAML/orjson for parsing) only.
"""

from .base import API_VERSION, GROUP, VERSION
from .config import (
    CONFIG_KEY,
    CREDENTIALS_KEY,
    SCHEMA_VERSION,
    GatewayConfig,
    GatewayCredentials,
    IncompatibleConfig,
    hash_api_key,
    load_config,
    load_credentials,
)
from .registry import CONTENT_KINDS, KINDS, KindInfo
from .render import RenderResult, Verdict, render
from .resources import ConfigError, Resource, parse_documents

__all__ = [
    "API_VERSION", "GROUP", "VERSION", "CONFIG_KEY", "CREDENTIALS_KEY", "SCHEMA_VERSION",
    "GatewayConfig", "GatewayCredentials", "IncompatibleConfig", "hash_api_key", "load_config",
    "load_credentials", "CONTENT_KINDS", "KINDS", "KindInfo", "RenderResult", "Verdict", "render",
    "ConfigError", "Resource", "parse_documents",
]
