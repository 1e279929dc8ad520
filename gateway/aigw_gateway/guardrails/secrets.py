"""Credentials in prompts: provider API keys, tokens, private keys, high-entropy assignments.

Each rule runs only when one of its literal anchors occurs in the text (a substring test in C),
so clean text costs a handful of `in` checks. `find_secret` returns the kind of the first
secret found, never the secret.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import orjson


def shannon_entropy(value: str) -> float:
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _mixed(value: str, *, entropy: float) -> bool:
    """Looks machine-generated: letters and digits, and not a repeated or templated string."""
    has_alpha = any(ch.isalpha() for ch in value)
    has_digit = any(ch.isdigit() for ch in value)
    return has_alpha and has_digit and shannon_entropy(value) >= entropy


def _jwt(match: re.Match[str]) -> bool:
    header = match.group(1)
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict) and ("alg" in decoded or "typ" in decoded)


@dataclass(frozen=True, slots=True)
class SecretRule:
    kind: str
    anchors: tuple[str, ...]
    """Literal strings one of which every match contains: the rule runs only when one occurs."""
    regex: re.Pattern[str]
    """Starts with a literal where it can (lookbehinds follow it), so `re` finds candidates fast."""
    valid: Callable[[re.Match[str]], bool] | None = None


RULES: tuple[SecretRule, ...] = (
    SecretRule("anthropicApiKey", ("sk-ant-",), re.compile(r"sk-ant-(?:api|admin|oat|sid)[0-9]{2}-[A-Za-z0-9_\-]{20,}")),
    SecretRule(
        "openaiApiKey",
        ("sk-",),
        re.compile(r"sk-(?<![A-Za-z0-9_\-]sk-)(?!ant-)(?:proj-|svcacct-|admin-)?([A-Za-z0-9_\-]{20,})"),
        lambda m: _mixed(m.group(1), entropy=3.0),
    ),
    SecretRule("awsAccessKeyId", ("AKIA", "ASIA", "ABIA", "ACCA"),
               re.compile(r"(?:AKIA|ASIA|ABIA|ACCA)(?<![A-Z0-9]....)[A-Z0-9]{16}(?![A-Z0-9])")),
    SecretRule("githubToken", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
               re.compile(r"g(?<![A-Za-z0-9_]g)(?:h[pousr]_[A-Za-z0-9]{36,}|ithub_pat_[A-Za-z0-9_]{50,})")),
    SecretRule("slackToken", ("xox", "hooks.slack.com"),
               re.compile(r"xox[abposer]-[A-Za-z0-9\-]{10,}|hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{16,}")),
    SecretRule("googleApiKey", ("AIza",), re.compile(r"AIza(?<![A-Za-z0-9_\-]AIza)[0-9A-Za-z_\-]{35}(?![A-Za-z0-9_\-])")),
    SecretRule("stripeKey", ("k_live_",), re.compile(r"[sr]k_live_[0-9A-Za-z]{20,}")),
    SecretRule("jwt", ("eyJ",), re.compile(r"(eyJ(?<![A-Za-z0-9_\-]eyJ)[A-Za-z0-9_\-]{8,})\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,}"), _jwt),
    SecretRule("privateKey", ("-----BEGIN",),
               re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----")),
)  # fmt: skip

# A credential assigned to a credential-like name: `api_key = "..."`, `password: ...`. Found from
# the name (a lowercase literal) and kept when the value looks machine-generated.
_ASSIGNED_NAMES = ("key", "token", "secret", "passw", "pwd", "credential")
_ASSIGNED = re.compile(r"(?:key|token|secret|passw(?:or)?d|pwd|credentials?)[a-z0-9_.\-]{0,20}?[\"']?\s*(?:=>|:=|=|:)\s*[\"']?"
                       r"([a-z0-9_\-+/=.~]{16,256})")  # fmt: skip


def _assigned_secret(text: str, lowered: str) -> bool:
    same = len(lowered) == len(text)  # str.lower() lengthens a few characters (U+0130)
    for name in _ASSIGNED_NAMES:
        at = lowered.find(name)
        while at >= 0:
            m = _ASSIGNED.match(lowered, at)
            if m is not None:
                value = text[m.start(1) : m.end(1)] if same else m.group(1)
                if _mixed(value, entropy=3.5):
                    return True
            at = lowered.find(name, at + 1)
    return False


_ANCHORS = tuple(sorted({a for r in RULES for a in r.anchors}))


def find_secret(text: str, rules: tuple[SecretRule, ...] = RULES) -> str | None:
    """The kind of the first secret in `text`, or None."""
    present = {a for a in _ANCHORS if a in text}
    if present:
        for rule in rules:
            if present.isdisjoint(rule.anchors):
                continue
            for m in rule.regex.finditer(text):
                if rule.valid is None or rule.valid(m):
                    return rule.kind
    lowered = text.lower()
    if any(name in lowered for name in _ASSIGNED_NAMES) and _assigned_secret(text, lowered):
        return "assignedSecret"
    return None
