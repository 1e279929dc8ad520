"""Fit a rendered document into a ConfigMap or Secret: plain when small, gzip when large.

The API server refuses a ConfigMap (or Secret) whose data exceeds 1 MiB. A config of a thousand
routes passes that, so a document over `PACK_THRESHOLD` bytes is stored gzip-compressed under
`<key>.gz` (ConfigMap `binaryData`, base64 like every Secret value); JSON compresses about
tenfold. A document that does not fit even compressed raises `DocumentTooLarge`: it is never
truncated. Readers accept either form, so an operator and a gateway of the same schema version
agree whichever form was written.

    entries = pack(CONFIG_KEY, config.to_json())        # {"config.json": b"..."} or {"config.json.gz": b"..."}
    configmap_fields(entries)                           # {"data": {...}} / {"binaryData": {...}}
    unpack(configmap_entries(configmap), CONFIG_KEY)    # the original bytes, or None
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Mapping
from typing import Any

OBJECT_DATA_LIMIT = 1024 * 1024  # what the API server accepts in a ConfigMap's or Secret's data
PACK_THRESHOLD = 768 * 1024  # compress above this (leaves room for the other keys, and base64)
MAX_UNPACKED = 64 * 1024 * 1024  # refuse to inflate beyond this (a corrupt or hostile object)
GZ_SUFFIX = ".gz"
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # gzip container: `base64 -d | gunzip` reads it by hand


class DocumentTooLarge(ValueError):
    """A document that does not fit the object even compressed."""


def pack(key: str, payload: bytes, threshold: int | None = None, limit: int | None = None) -> dict[str, bytes]:
    """The entries that store `payload` under `key`: as is, or gzip-compressed under `key.gz`."""
    threshold = PACK_THRESHOLD if threshold is None else threshold
    limit = OBJECT_DATA_LIMIT if limit is None else limit
    if len(payload) <= threshold:
        return {key: payload}
    packer = zlib.compressobj(9, zlib.DEFLATED, _GZIP_WBITS)  # gzip header with mtime 0: deterministic
    packed = packer.compress(payload) + packer.flush()
    encoded = 4 * ((len(packed) + 2) // 3)  # base64 size, as stored
    if encoded + len(key) + len(GZ_SUFFIX) > limit:
        raise DocumentTooLarge(
            f"{key} is {len(payload)} bytes, {len(packed)} compressed: over the {limit}-byte limit of one object"
        )
    return {key + GZ_SUFFIX: packed}


def unpack(entries: Mapping[str, bytes], key: str) -> bytes | None:
    """The document stored under `key` in either form; None if absent. Raises ValueError if corrupt."""
    if key in entries:
        return entries[key]
    packed = entries.get(key + GZ_SUFFIX)
    if packed is None:
        return None
    inflater = zlib.decompressobj(_GZIP_WBITS)
    try:
        out = inflater.decompress(packed, MAX_UNPACKED)
    except zlib.error as exc:
        raise ValueError(f"{key}{GZ_SUFFIX} is not valid gzip data: {exc}") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError(f"{key}{GZ_SUFFIX} is truncated or inflates beyond {MAX_UNPACKED} bytes")
    return out


def configmap_fields(entries: Mapping[str, bytes]) -> dict[str, dict[str, str]]:
    """`data` (UTF-8 text) for plain entries, `binaryData` (base64) for compressed ones."""
    fields: dict[str, dict[str, str]] = {}
    for key, value in entries.items():
        if key.endswith(GZ_SUFFIX):
            fields.setdefault("binaryData", {})[key] = base64.b64encode(value).decode()
        else:
            fields.setdefault("data", {})[key] = value.decode("utf-8")
    return fields


def secret_data(entries: Mapping[str, bytes]) -> dict[str, str]:
    """A Secret's `data`: every entry base64-encoded."""
    return {key: base64.b64encode(value).decode() for key, value in entries.items()}


def configmap_entries(obj: Mapping[str, Any]) -> dict[str, bytes]:
    """A ConfigMap's `data` and `binaryData` as bytes. Raises ValueError on invalid base64."""
    entries = {key: str(value).encode("utf-8") for key, value in (obj.get("data") or {}).items()}
    for key, value in (obj.get("binaryData") or {}).items():
        entries[key] = _b64(key, value)
    return entries


def secret_entries(obj: Mapping[str, Any]) -> dict[str, bytes]:
    """A Secret's `data` as bytes. Raises ValueError on invalid base64."""
    return {key: _b64(key, value) for key, value in (obj.get("data") or {}).items()}


def _b64(key: str, value: Any) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except binascii.Error:
        raise ValueError(f"{key}: not valid base64") from None
