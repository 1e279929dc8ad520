"""Wire facts, one module per provider API, used by both directions (ingress and provider adapter).

`rules_for(provider type)` gives the table of which canonical request fields a target can honour
(see rules.py); canonical.py types the canonical shapes and their extension keys.
"""

from __future__ import annotations

from .bedrock import FIELDS as _BEDROCK
from .gemini import FIELDS as _GEMINI
from .anthropic import FIELDS as _ANTHROPIC
from .ollama import FIELDS as _OLLAMA
from .openai import FIELDS as _OPENAI, FIELDS_COMPATIBLE as _OPENAI_COMPATIBLE
from .rules import FieldRules, UnsupportedField, fit

RULES: dict[str, FieldRules] = {
    "openai": _OPENAI,
    "azure-openai": _OPENAI,
    "openai-compatible": _OPENAI_COMPATIBLE,
    "anthropic": _ANTHROPIC,
    "gemini": _GEMINI,
    "bedrock": _BEDROCK,
    "ollama": _OLLAMA,
}


def rules_for(provider: str) -> FieldRules | None:
    return RULES.get(provider)


__all__ = ["RULES", "FieldRules", "UnsupportedField", "fit", "rules_for"]
