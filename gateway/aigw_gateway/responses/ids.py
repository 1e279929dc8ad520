"""Response ids: where a follow-up (`previous_response_id`) must go, with no state in a pod.

- `resp_aigw_<32 hex>`: a response of a translated target; its conversation is in the response
  store, under the tenant that created it (responses/store.py).
- `resp_aigwn_<token>`: a response a provider keeps itself (OpenAI, Azure OpenAI). The token seals
  the credential, the provider's own response id and the client's model name: encrypted and
  authenticated (keyed BLAKE2b in counter mode with a synthetic nonce, then a keyed BLAKE2b
  tag; keys per tenant, derived from the gateway's secrets). A token from another tenant, or a
  modified one, does not open: it names nothing and reveals nothing. A tenant that could forge one still reaches only a credential of
  the route it calls, which it may use anyway (the follow-up is checked against that route).

The key derives from the report token and the provider keys, so rotating a provider key makes
older native ids unknown (a 404), as an expired id would be.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass

import orjson

from aigw_config.config import TenantConfig

from ..runtime import Runtime

STORED_PREFIX = "resp_aigw_"
NATIVE_PREFIX = "resp_aigwn_"
_NONCE = 12
_TAG = 16


@dataclass(frozen=True, slots=True)
class NativeRef:
    credential: str
    upstream_id: str
    model: str


def new_stored_id() -> str:
    return STORED_PREFIX + uuid.uuid4().hex


def is_stored(response_id: str) -> bool:
    return response_id.startswith(STORED_PREFIX) and not response_id.startswith(NATIVE_PREFIX)


def _tenant_key(runtime: Runtime, tenant: TenantConfig) -> bytes:
    root = hashlib.sha256(b"aigw-responses\0" + (runtime.report_token or "").encode())
    for name in sorted(runtime.provider_keys):
        root.update(b"\0" + name.encode() + b"=" + runtime.provider_keys[name].encode())
    return hmac.new(root.digest(), b"tenant\0" + tenant.name.encode(), hashlib.sha256).digest()


def _prf(key: bytes, data: bytes, size: int = 64) -> bytes:
    """Keyed BLAKE2b: a PRF and MAC in one call (several times cheaper than HMAC in Python)."""
    return hashlib.blake2b(data, key=key, digest_size=size).digest()


def _xor(data: bytes, key: bytes, nonce: bytes) -> bytes:
    stream = _keystream(key, nonce, len(data))
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data), "big")


def _keystream(key: bytes, nonce: bytes, size: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < size:
        out += _prf(key, nonce + counter.to_bytes(4, "big"))
        counter += 1
    return out[:size]


_KEYS: dict[int, tuple[Runtime, dict[str, tuple[bytes, bytes]]]] = {}


def _keys(runtime: Runtime, tenant: TenantConfig) -> tuple[bytes, bytes]:
    """(encryption key, MAC key) of a tenant, derived once per loaded config."""
    cached = _KEYS.get(id(runtime))
    if cached is None or cached[0] is not runtime:
        if len(_KEYS) >= 4:  # configs in use at once: the current one and a few still finishing
            _KEYS.clear()
        cached = _KEYS[id(runtime)] = (runtime, {})
    keys = cached[1].get(tenant.name)
    if keys is None:
        key = _tenant_key(runtime, tenant)
        keys = cached[1][tenant.name] = (hmac.new(key, b"enc", hashlib.sha256).digest(),
                                         hmac.new(key, b"mac", hashlib.sha256).digest())
    return keys


def seal(runtime: Runtime, tenant: TenantConfig, ref: NativeRef) -> str:
    enc, mac = _keys(runtime, tenant)
    plain = orjson.dumps([ref.credential, ref.upstream_id, ref.model])
    # Synthetic nonce (as in SIV): the same response always gets the same id, in every event of
    # a stream and at every retrieval; equal ids only ever say "the same response".
    nonce = _prf(mac, b"nonce\0" + plain, _NONCE)
    cipher = _xor(plain, enc, nonce)
    tag = _prf(mac, nonce + cipher, _TAG)
    return NATIVE_PREFIX + base64.urlsafe_b64encode(nonce + cipher + tag).rstrip(b"=").decode()


def open_native(runtime: Runtime, tenant: TenantConfig, response_id: str) -> NativeRef | None:
    """The sealed reference, or None for anything that is not a valid id of this tenant."""
    if not response_id.startswith(NATIVE_PREFIX) or len(response_id) > 2048:
        return None
    token = response_id[len(NATIVE_PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    if len(raw) <= _NONCE + _TAG:
        return None
    nonce, cipher, tag = raw[:_NONCE], raw[_NONCE:-_TAG], raw[-_TAG:]
    enc, mac = _keys(runtime, tenant)
    if not hmac.compare_digest(_prf(mac, nonce + cipher, _TAG), tag):
        return None
    plain = _xor(cipher, enc, nonce)
    try:
        credential, upstream_id, model = orjson.loads(plain)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        return None
    if not all(isinstance(v, str) for v in (credential, upstream_id, model)):
        return None
    return NativeRef(credential, upstream_id, model)
