"""Placeholders: numbering within a request, and putting the originals back in the answer."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter

import orjson

from ..errors import GuardrailBlocked
from .scanner import Detector, Hit, Rewrite
from .shape import Shape

PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_[0-9]{1,6}>")
_PLACEHOLDER_TAIL = re.compile(r"<[A-Z0-9_]*\Z")


class RestoreMap:
    """The values masked in one request: `<EMAIL_1>` <-> `alice@example.com`.

    The same (label, value) always gets the same placeholder; numbers count per label from 1.
    Holds original values: keep it with the request, never log it.
    """

    __slots__ = ("_values", "_placeholders", "_counters")

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._placeholders: dict[tuple[str, str], str] = {}
        self._counters: Counter[str] = Counter()

    def placeholder(self, label: str, value: str) -> str:
        key = (label, value)
        found = self._placeholders.get(key)
        if found is None:
            self._counters[label] += 1
            found = f"<{label}_{self._counters[label]}>"
            self._placeholders[key] = found
            self._values[found] = value
        return found

    def original(self, placeholder: str) -> str | None:
        return self._values.get(placeholder)

    def derive(self) -> RestoreMap:
        """A map for masking the answer: numbering goes on after the request's, and the
        placeholders it adds are never restored."""
        child = RestoreMap()
        child._placeholders = dict(self._placeholders)
        child._counters = self._counters.copy()
        return child

    @property
    def longest(self) -> int:
        return max(map(len, self._values), default=0)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:  # never the values
        return f"RestoreMap({len(self._values)} placeholders)"


def placeholder_detector(restore: RestoreMap) -> Detector:
    """Finds this request's placeholders in the model's text; validation is map membership."""
    values = restore._values

    def known(_text: str, m: re.Match[str]) -> tuple[int, int] | None:
        return m.span() if m.group() in values else None

    def has_lt(text: str, pos: int) -> bool:
        return text.find("<", pos) >= 0

    # Holdback: an unfinished `<LABEL_n` at the very end, shorter than the longest placeholder.
    shape = Shape(None, max(restore.longest, 2), 0)
    return Detector("placeholder", "", PLACEHOLDER, "restore", 0, known, has_lt, _PLACEHOLDER_TAIL, shape, requires="<")


def json_string_body(value: str) -> str:
    """`value` as it must appear inside a JSON string literal (tool call arguments)."""
    return orjson.dumps(value).decode()[1:-1]


_PHRASES = {
    "creditCard": "a payment card number",
    "email": "an email address",
    "phone": "a phone number",
    "ssn": "a US social security number",
    "ipAddress": "an IP address",
    "iban": "an IBAN",
    "aadhaar": "an Aadhaar number",
    "pan": "an Indian PAN",
}


def blocked(detector_name: str, where: str) -> GuardrailBlocked:
    """The refusal names the kind of data only, never the value."""
    what = _PHRASES.get(detector_name, f"data matching the {detector_name.removeprefix('custom:')} pattern")
    return GuardrailBlocked(f"The {where} was blocked by a guardrail policy: it contains {what} ({detector_name}).")


# 16 hex digits: a 64-bit tag. With the gateway's secret key a guess cannot be checked offline at
# all; 64 bits also keep accidental collisions between distinct values out of reach.
HASH_TAG_HEX = 16


def rewriter(
    *,
    numbering: RestoreMap,
    restore: RestoreMap | None,
    counts: Counter[tuple[str, str]],
    hash_key: bytes,
    where: str,
    json_escape: bool = False,
) -> Rewrite:
    """The action for each hit: restore a placeholder, or mask/redact/hash/block/log a value."""

    def rewrite(hit: Hit, value: str) -> str | None:
        detector = hit.detector
        action = detector.action
        counts[(detector.name, action)] += 1
        if action == "restore":
            original = restore.original(value) if restore is not None else None
            if original is None:
                return None
            return json_string_body(original) if json_escape else original
        if action == "mask":
            return numbering.placeholder(detector.label, value)
        if action == "redact":
            return f"[REDACTED_{detector.label}]"
        if action == "hash":
            digest = hmac.new(hash_key, f"{detector.label}\0{value}".encode(), hashlib.sha256).hexdigest()
            return f"<{detector.label}_HASH_{digest[:HASH_TAG_HEX]}>"
        if action == "block":
            raise blocked(detector.name, where)
        return None  # log: counted above, text unchanged

    return rewrite
