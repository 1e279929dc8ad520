"""The GatewayConfig document: version, generation, content hash, secrets kept out of reprs."""

from __future__ import annotations

import orjson
import pytest

from aigw_config.config import (
    SCHEMA_VERSION,
    GatewayConfig,
    GatewayCredentials,
    IncompatibleConfig,
    hash_api_key,
    load_config,
)


def test_hash_is_stable_and_ignores_generation():
    a = GatewayConfig().sealed(1)
    b = GatewayConfig().sealed(7)
    assert a.hash == b.hash and a.hash.startswith("sha256:")
    assert load_config(b.to_json()).generation == 7


def test_incompatible_schema_version_is_refused():
    data = orjson.loads(GatewayConfig().sealed(1).to_json())
    data["schemaVersion"] = SCHEMA_VERSION + 1
    with pytest.raises(IncompatibleConfig, match="schemaVersion"):
        load_config(orjson.dumps(data))


def test_tampered_config_is_refused():
    data = orjson.loads(GatewayConfig().sealed(1).to_json())
    data["settings"]["allowAnonymous"] = "public"
    with pytest.raises(IncompatibleConfig, match="hash does not match"):
        load_config(orjson.dumps(data))


def test_credentials_never_show_keys_in_repr():
    creds = GatewayCredentials(provider_keys={"p": "sk-live-secret"}, redis_url="redis://:pw@host")
    assert "sk-live-secret" not in repr(creds) and "pw@" not in repr(creds) and "sk-live-secret" not in str(creds)


def test_key_hash_format():
    assert hash_api_key("k") == "sha256:" + "8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a"
