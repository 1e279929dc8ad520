"""Upper bounds on the numbers a client sends that feed a token reservation.

A reservation is `prompt estimate + completion cap × n`. Without a bound, one tenant could send
`max_tokens: 18446744073709551615` and make the reservation overflow Redis's 64-bit integers:
the admission script then fails. These bounds sit far above what any model accepts (the largest
output limits are in the hundreds of thousands of tokens; OpenAI caps `n` at 128), so a request
refused here would have been refused by every provider too.

The limit is checked on the canonical request, and the 400 names the field the client sent, in
the client's own API (`max_tokens`, `generationConfig.maxOutputTokens`, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidRequest

MAX_COMPLETION_TOKENS = 1_000_000  # per choice; no model's output limit comes near it
MAX_CHOICES = 128  # OpenAI's own maximum for n
# The largest reservation one request can make: the completion cap for every choice, plus a
# prompt estimate bounded by the request body size (256 MiB at most, about 90M tokens).
MAX_RESERVATION_TOKENS = MAX_COMPLETION_TOKENS * MAX_CHOICES + 100_000_000

# Canonical field -> the name the client used, per client API.
_FIELD_NAMES: dict[str, dict[str, str]] = {
    "openai": {"max_tokens": "max_tokens", "max_completion_tokens": "max_completion_tokens", "n": "n"},
    "anthropic": {"max_tokens": "max_tokens"},
    "gemini": {"max_tokens": "generationConfig.maxOutputTokens", "n": "generationConfig.candidateCount"},
}
_BOUNDS = (("max_completion_tokens", MAX_COMPLETION_TOKENS), ("max_tokens", MAX_COMPLETION_TOKENS), ("n", MAX_CHOICES))


def _too_big(value: Any, bound: int) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not value <= bound  # NaN too


def check_reservation_bounds(request: Mapping[str, Any], api: str = "openai", body: Mapping[str, Any] | None = None) -> None:
    """Raise InvalidRequest (400, naming the field) when a number that feeds the reservation is
    beyond what any model accepts. `request` is canonical; `body` the client's original (for
    fields the translation does not carry, such as Gemini's candidateCount)."""
    names = _FIELD_NAMES.get(api, _FIELD_NAMES["openai"])
    for key, bound in _BOUNDS:
        value = request.get(key)
        if value is not None and _too_big(value, bound):
            _refuse(names.get(key, key), value, bound)
    if api == "gemini" and body is not None:
        config = body.get("generationConfig") or body.get("generation_config")
        if isinstance(config, Mapping):
            for camel, snake, bound in (("candidateCount", "candidate_count", MAX_CHOICES),
                                        ("maxOutputTokens", "max_output_tokens", MAX_COMPLETION_TOKENS)):
                value = config.get(camel, config.get(snake))
                if value is not None and _too_big(value, bound):
                    _refuse(f"generationConfig.{camel}", value, bound)


def _refuse(field: str, value: Any, bound: int) -> None:
    shown = str(value) if len(str(value)) <= 40 else str(value)[:40] + "..."
    raise InvalidRequest(
        f"'{field}' is {shown}: the gateway accepts at most {bound:,} (beyond what any model accepts)",
        param=field,
    )
