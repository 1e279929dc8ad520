"""Which canonical request field a provider API can honour, and what happens to one it cannot.

Each provider API's module (wire/anthropic.py, wire/gemini.py, ...) declares a `FieldRules`
table. `fit` checks a canonical request against one target's table before it is translated:
a field the target cannot honour is refused with a 400 naming it (the route's default,
`unsupportedFields: reject`) or removed and reported (`unsupportedFields: drop`, listed in the
`x-aigw-dropped-fields` header). Nothing is clamped and nothing disappears unnoticed.

A field is
- translated: the adapter maps it (possibly only for some values: `limited`);
- ignored: advisory, the answer is the same without it (`user` for a provider with no such field);
- unsupported: refused unless its value asks for nothing (`n: 1`, `logprobs: false`).
A top-level key a non-OpenAI table does not list is unsupported too: an unknown field is never
silently lost on the way to a foreign API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InvalidRequest

Check = Callable[[Any, Mapping[str, Any]], str | None]  # (value, request) -> why it cannot be honoured


class UnsupportedField(InvalidRequest):
    code = "unsupported_field"


@dataclass(frozen=True)
class Support:
    kind: Literal["translated", "ignored", "unsupported"]
    check: Check | None = None  # translated/unsupported only for some values

    def problem(self, value: Any, request: Mapping[str, Any]) -> str | None:
        if self.kind == "ignored":
            return None
        if self.check is not None:
            return self.check(value, request)
        return "has no equivalent" if self.kind == "unsupported" else None


TRANSLATED = Support("translated")
IGNORED = Support("ignored")
UNSUPPORTED = Support("unsupported")


def unless(neutral: Callable[[Any], bool]) -> Support:
    """Unsupported, except for a value that asks for nothing."""
    return Support("unsupported", lambda v, _r: None if v is None or neutral(v) else "has no equivalent")


def limited(check: Check) -> Support:
    """Translated for the values `check` accepts (it returns None), refused for the others."""
    return Support("translated", check)


def at_most(limit: float) -> Support:
    def check(value: Any, _request: Mapping[str, Any]) -> str | None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > limit:
            return f"above this API's maximum of {limit:g} (the gateway does not clamp)"
        return None
    return limited(check)


# Values that ask for nothing, shared by the tables.
def one(v: Any) -> bool:
    return v == 1


def falsy(v: Any) -> bool:
    return v is False or v == 0 or v == {} or v == []


def true(v: Any) -> bool:
    return v is True


def text_only(v: Any) -> bool:
    return v == ["text"]


def zero(v: Any) -> bool:
    return v == 0


@dataclass(frozen=True)
class FieldRules:
    api: str  # the x_vendor key this API re-applies ("anthropic", "gemini"), or ""
    label: str  # for messages: "Anthropic", "Gemini", ...
    fields: Mapping[str, Support] = field(default_factory=dict)
    open: bool = False  # OpenAI-shaped: unlisted top-level keys are the API's own and pass

    def problems(self, request: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        """(client-side field name, canonical key, why) for every field this API cannot honour."""
        out: list[tuple[str, str, str]] = []
        names = request.get("x_names") or {}  # canonical key -> the client's name for it
        for key, value in request.items():
            if key in ("x_names", "x_paths"):
                continue
            if key == "x_vendor":
                for api, extra in (value or {}).items():
                    if api != self.api:
                        out.extend((name, key, f"is {api}-specific") for name in extra)
                continue
            support = self.fields.get(key)
            if support is None:
                if not self.open and value is not None:
                    out.append((names.get(key, key), key, "is not known to the gateway's translation"))
                continue
            why = support.problem(value, request)
            if why is not None:
                out.append((names.get(key, key), key, why))
        return out


Mode = Literal["reject", "drop"]


def fit(rules: FieldRules, request: dict[str, Any], mode: Mode, target: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The request this target can take as it is, and the field names dropped on the way.

    Raises UnsupportedField (400, `param` = the first field) in reject mode."""
    problems = rules.problems(request)
    if not problems:
        return request, ()
    if mode != "drop":
        name, _, why = problems[0]
        others = [p[0] for p in problems[1:]]
        more = f" (also: {', '.join(others)})" if others else ""
        raise UnsupportedField(
            f"'{name}' {why} on {rules.label} targets ({target}){more}; remove it, or let the ModelRoute drop "
            "such fields with spec.unsupportedFields: drop", param=name)
    out = dict(request)
    vendor = {api: dict(extra) for api, extra in (request.get("x_vendor") or {}).items()}
    dropped: list[str] = []
    for name, key, _ in problems:
        if key == "x_vendor":
            for extra in vendor.values():
                extra.pop(name, None)
        else:
            out.pop(key, None)
        dropped.append(name)
    if "x_vendor" in out:
        out["x_vendor"] = vendor
    return out, tuple(dict.fromkeys(dropped))
