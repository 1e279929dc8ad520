"""Response ids: where a follow-up (`previous_response_id`) must go, with no state in a pod.

- `resp_aigw_<32 hex>`: a response of a translated target; its conversation is in the response
  store, under the tenant that created it (responses/store.py).
- `resp_aigwn_<token>`: a response a provider keeps itself (OpenAI, Azure OpenAI). The token seals
  the credential, the provider's own response id and the client's model name: encrypted and
  authenticated (HMAC-SHA256 in counter mode with a synthetic nonce, then an HMAC tag, both keyed per tenant from the
  gateway's secrets). A token from another tenant, or a modified one, does not open: it names
  nothing and reveals nothing. A tenant that could forge one still reaches only a credential of
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


def _keystream(key: bytes, nonce: bytes, size: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < size:
        out += hmac.new(key, nonce + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        counter += 1
    return out[:size]


def _keys(runtime: Runtime, tenant: TenantConfig) -> tuple[bytes, bytes]:
    key = _tenant_key(runtime, tenant)
    return (hmac.new(key, b"enc", hashlib.sha256).digest(), hmac.new(key, b"mac", hashlib.sha256).digest())


def seal(runtime: Runtime, tenant: TenantConfig, ref: NativeRef) -> str:
    enc, mac = _keys(runtime, tenant)
    plain = orjson.dumps([ref.credential, ref.upstream_id, ref.model])
    # Synthetic nonce (as in SIV): the same response always gets the same id, in every event of
    # a stream and at every retrieval; equal ids only ever say "the same response".
    nonce = hmac.new(mac, b"nonce\0" + plain, hashlib.sha256).digest()[:_NONCE]
    cipher = bytes(a ^ b for a, b in zip(plain, _keystream(enc, nonce, len(plain))))
    tag = hmac.new(mac, nonce + cipher, hashlib.sha256).digest()[:_TAG]
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
    if not hmac.compare_digest(hmac.new(mac, nonce + cipher, hashlib.sha256).digest()[:_TAG], tag):
        return None
    plain = bytes(a ^ b for a, b in zip(cipher, _keystream(enc, nonce, len(cipher))))
    try:
        credential, upstream_id, model = orjson.loads(plain)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        return None
    if not all(isinstance(v, str) for v in (credential, upstream_id, model)):
        return None
    return NativeRef(credential, upstream_id, model)
