"""What a regular expression can read, worked out once when a detector is compiled.

The streaming scanner must know, for a buffer that may continue, which positions are already
decided. A pattern's *alphabet* is every character its consuming parts and lookaheads can match.
Scanning rightwards from a start position, the regex engine reads only alphabet characters plus at
most one character outside it (the one that stops a repeat, fails a lookahead or settles `\\b`/`$`);
one-character lookahead alternatives read only that character, so they add nothing to the alphabet.
So when the buffer ends in a run of alphabet characters, every start position before that run is
final: its match (or non-match) cannot change whatever text arrives next. Positions more than
`window` characters from the end are final too, because no match is longer than that.

A pattern whose alphabet cannot be listed (`.`, negated classes) gets `nonalpha=None`: the
scanner then holds back the whole window. A pattern with unbounded repetition gets the window cap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

try:  # Python >= 3.11
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser as _p  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10 and older
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _p  # type: ignore[no-redef]

WINDOW_CAP = 256
"""Longest match that is guaranteed across chunk boundaries for patterns with unbounded repeats."""

_CATEGORY = {
    _c.CATEGORY_DIGIT: r"\d",
    _c.CATEGORY_NOT_DIGIT: r"\D",
    _c.CATEGORY_SPACE: r"\s",
    _c.CATEGORY_NOT_SPACE: r"\S",
    _c.CATEGORY_WORD: r"\w",
    _c.CATEGORY_NOT_WORD: r"\W",
}
_REPEATS = {_c.MAX_REPEAT, _c.MIN_REPEAT} | ({_c.POSSESSIVE_REPEAT} if hasattr(_c, "POSSESSIVE_REPEAT") else set())


class _Unlisted(Exception):
    """The alphabet cannot be written as a positive character class."""


@dataclass(frozen=True, slots=True)
class Shape:
    nonalpha: re.Pattern[str] | None
    """Matches one character outside the alphabet; None when the alphabet is unlisted."""
    window: int
    """Characters from the buffer end within which a start position may still change."""
    lookbehind: int
    """Characters of already-emitted text a match decision may look back at."""
    chars: str | None = None
    """The alphabet spelled out, when it is ASCII-only (for `str.rstrip`, much cheaper than a regex)."""


def _char(code: int) -> str:
    return re.escape(chr(code))


def _collect(items, out: list[str], behind: list[int]) -> None:  # noqa: C901 - a walk over sre ops
    for op, av in items:
        if op is _c.LITERAL:
            out.append(_char(av))
        elif op is _c.IN:
            for kind, value in av:
                if kind is _c.LITERAL:
                    out.append(_char(value))
                elif kind is _c.RANGE:
                    out.append(f"{_char(value[0])}-{_char(value[1])}")
                elif kind is _c.CATEGORY and value in _CATEGORY:
                    out.append(_CATEGORY[value])
                else:  # NEGATE, NOT_LITERAL or an unknown category
                    raise _Unlisted
        elif op is _c.SUBPATTERN:
            _collect(av[-1], out, behind)
        elif op in _REPEATS:
            _collect(av[2], out, behind)
        elif op is _c.BRANCH:
            for branch in av[1]:
                _collect(branch, out, behind)
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            direction, body = av
            if direction < 0:
                behind.append(body.getwidth()[1])
            else:
                _collect_lookahead(body, out, behind)
        elif op is _c.GROUPREF_EXISTS:
            _collect(av[1], out, behind)
            if av[2] is not None:
                _collect(av[2], out, behind)
        elif getattr(_c, "ATOMIC_GROUP", None) is not None and op is _c.ATOMIC_GROUP:
            _collect(av, out, behind)
        elif op in (_c.AT, _c.GROUPREF):
            continue  # zero-width, or the text of a group already counted
        else:  # ANY, NOT_LITERAL and anything unforeseen
            raise _Unlisted


def _collect_lookahead(body, out: list[str], behind: list[int]) -> None:
    """A lookahead alternative that reads one character reads only the one allowed non-alphabet
    character after a match, so only longer alternatives add to the alphabet."""
    items = list(body)
    branches = items[0][1][1] if len(items) == 1 and items[0][0] is _c.BRANCH else [body]
    for branch in branches:
        if branch.getwidth()[1] > 1:
            _collect(branch, out, behind)


def _lookahead_width(items) -> int:
    width = 0
    for op, av in items:
        if op in (_c.ASSERT, _c.ASSERT_NOT) and av[0] > 0:
            width = max(width, av[1].getwidth()[1])
        elif op is _c.SUBPATTERN:
            width = max(width, _lookahead_width(av[-1]))
        elif op in _REPEATS:
            width = max(width, _lookahead_width(av[2]))
        elif op is _c.BRANCH:
            width = max([width, *(_lookahead_width(b) for b in av[1])])
    return width


def analyse(pattern: re.Pattern[str], *, cap: int = WINDOW_CAP) -> Shape:
    """The Shape of a compiled pattern; conservative whenever the analysis is unsure."""
    try:
        tree = _p.parse(pattern.pattern, pattern.flags & ~re.UNICODE)
        widest = tree.getwidth()[1]
        ahead = _lookahead_width(tree.data)
    except Exception:  # an analysis failure must never reject a valid pattern
        return Shape(None, cap, 64)
    window = cap if widest >= _c.MAXREPEAT or widest + ahead + 1 > cap else widest + ahead + 1
    parts: list[str] = []
    behind: list[int] = []
    try:
        _collect(tree.data, parts, behind)
        nonalpha = re.compile("[^" + "".join(parts) + "]", pattern.flags & (re.IGNORECASE | re.ASCII)) if parts else None
    except (_Unlisted, re.error):
        nonalpha = None
    lookbehind = max(behind, default=0)
    return Shape(nonalpha, window, lookbehind if lookbehind < _c.MAXREPEAT else cap, _spelled(nonalpha, parts, pattern.flags))


def _spelled(nonalpha: re.Pattern[str] | None, parts: list[str], flags: int) -> str | None:
    """The alphabet as a string of ASCII characters, when it provably holds no other character:
    categories (\\d, \\w) and case-insensitive matching reach beyond ASCII unless re.ASCII is set."""
    if nonalpha is None:
        return None
    if not flags & re.ASCII and (flags & re.IGNORECASE or any(p.startswith("\\") and p[1:2].isalpha() for p in parts)):
        return None
    if any(ord(ch) > 127 for p in parts for ch in p if not p.startswith("\\")):
        return None
    return "".join(chr(c) for c in range(128) if not nonalpha.match(chr(c)))
