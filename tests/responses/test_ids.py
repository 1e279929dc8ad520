"""Sealed response ids: they open only for the tenant that got them, under the same secrets."""

from __future__ import annotations

import base64

from aigw_config.config import TenantConfig
from aigw_gateway.responses import ids
from aigw_gateway.runtime import Runtime

TEAM, OTHER = TenantConfig(name="team"), TenantConfig(name="other")
REF = ids.NativeRef("openai-prod", "resp_0123456789abcdef", "gpt-4o")


def runtime(keys: dict[str, str] | None = None, token: str | None = "report-token") -> Runtime:
    return Runtime(config=None, routes_by_model={}, tenants_by_key_hash={}, allowed_models={}, key_hashes_of={},
                   providers={}, provider_keys=keys if keys is not None else {"openai-prod": "sk-1", "azure": "sk-2"},
                   redis_url=None, report_token=token, loaded_at=0.0)


def test_round_trip_and_stable_id():
    rt = runtime()
    sealed = ids.seal(rt, TEAM, REF)
    assert sealed.startswith(ids.NATIVE_PREFIX) and ids.seal(rt, TEAM, REF) == sealed  # same response, same id
    assert ids.open_native(rt, TEAM, sealed) == REF
    assert ids.open_native(runtime(), TEAM, sealed) == REF  # another pod with the same config


def test_reveals_nothing_readable():
    sealed = ids.seal(runtime(), TEAM, REF)
    raw = base64.urlsafe_b64decode(sealed[len(ids.NATIVE_PREFIX):] + "==")
    for secret in (b"openai-prod", b"resp_0123456789abcdef", b"gpt-4o"):
        assert secret not in raw


def test_other_tenant_tampering_and_other_secrets_do_not_open():
    rt = runtime()
    sealed = ids.seal(rt, TEAM, REF)
    assert ids.open_native(rt, OTHER, sealed) is None
    token = bytearray(base64.urlsafe_b64decode(sealed[len(ids.NATIVE_PREFIX):] + "=="))
    token[14] ^= 1  # one bit of the ciphertext
    tampered = ids.NATIVE_PREFIX + base64.urlsafe_b64encode(bytes(token)).rstrip(b"=").decode()
    assert ids.open_native(rt, TEAM, tampered) is None
    assert ids.open_native(runtime({"openai-prod": "sk-rotated", "azure": "sk-2"}), TEAM, sealed) is None
    assert ids.open_native(runtime(token="another"), TEAM, sealed) is None
    for junk in ("resp_abc", ids.NATIVE_PREFIX, ids.NATIVE_PREFIX + "!!!", ids.NATIVE_PREFIX + "A" * 3000):
        assert ids.open_native(rt, TEAM, junk) is None


def test_stored_ids():
    new = ids.new_stored_id()
    assert ids.is_stored(new) and not ids.is_stored(ids.seal(runtime(), TEAM, REF)) and new != ids.new_stored_id()
