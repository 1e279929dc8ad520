"""Fast candidate search: the matches `regex.finditer(text, pos)` would yield, found cheaply.

Python's `re` scans a pattern that starts with a lookbehind position by position (~25 ns a
character), so ten detectors over a 10 KB prompt would cost milliseconds. The finders here jump to
the only places a match can start, and yield exactly the matches `finditer` yields there:

- digit detectors (cards, SSN, Aadhaar, IPv4, phone, PAN): every candidate's digits lie in one
  *cluster*, a maximal run of digits joined by ` +().-` holding at least four digits. One shared
  regex finds the clusters (its first character is a class, which `re` skips through quickly);
  each detector then scans only clusters with enough digits, from two characters before them.
- email: every candidate holds one `@`; its only possible start is where the run of local-part
  characters before the `@` begins (the lookbehind refuses any later start).
- IPv6: every candidate holds `:` followed by a hex digit or `:`; its only possible start is where
  the run of `[0-9A-Fa-f:.]` before that begins.

`tests/guardrails/test_scanner.py` checks each finder against `finditer` on random texts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

Finder = Callable[[str, int, "Context"], Iterator["re.Match[str]"]]

_CLUSTER = re.compile(r"[0-9](?:[ +().\-]*[0-9]){3,}")
_SEPARATORS = str.maketrans("", "", " +().-")


class Context:
    """Per-scan cache shared by the detectors of one `find` or one channel step."""

    __slots__ = ("text", "base", "_clusters")

    def __init__(self, text: str, base: int = 0) -> None:
        self.text = text
        self.base = base
        self._clusters: list[tuple[int, int, int]] | None = None

    def clusters(self) -> list[tuple[int, int, int]]:
        """(start, end, digits) of every digit cluster at or after `base`."""
        if self._clusters is None:
            text = self.text
            self._clusters = [
                (m.start(), m.end(), len(m.group().translate(_SEPARATORS))) for m in _CLUSTER.finditer(text, self.base)
            ]
        return self._clusters


def digit_finder(regex: re.Pattern[str], min_digits: int, *, need: str = "", lead: int = 2) -> Finder:
    """For patterns whose consumed characters are digits and ` +().-`, starting at most `lead`
    characters before their first digit, and reading at most 8 characters past their last."""

    def find(text: str, pos: int, ctx: Context) -> Iterator[re.Match[str]]:
        last = pos
        n = len(text)
        for start, end, digits in ctx.clusters():
            if end <= last or digits < min_digits or (need and text.find(need, start, end) < 0):
                continue
            lo = start - lead
            for m in regex.finditer(text, lo if lo > last else last, end + 8 if end + 8 < n else n):
                yield m
                last = m.end()

    return find


def pan_finder(regex: re.Pattern[str]) -> Finder:
    """PAN: five letters, four digits, a letter; the digits are a cluster of exactly four."""

    def find(text: str, pos: int, ctx: Context) -> Iterator[re.Match[str]]:
        for start, end, digits in ctx.clusters():
            if digits == 4 and end - start == 4 and start - 5 >= pos:
                m = regex.match(text, start - 5)
                if m:
                    yield m

    return find


_LOCAL_RUN = re.compile(r"[A-Za-z0-9._%+\-]{1,64}\Z")


def email_finder(regex: re.Pattern[str]) -> Finder:
    def find(text: str, pos: int, _ctx: Context) -> Iterator[re.Match[str]]:
        last = pos
        at = text.find("@", pos)
        while at >= 0:
            run = _LOCAL_RUN.search(text, at - 64 if at > 64 else 0, at)
            if run is not None and run.start() >= last:
                m = regex.match(text, run.start())
                if m:
                    yield m
                    last = m.end()
            at = text.find("@", at + 1 if at + 1 > last else last)

    return find


_IPV6_HINT = re.compile(r":[0-9A-Fa-f:]")
_HEX_RUN = re.compile(r"[0-9A-Fa-f:.]{0,45}\Z")


def ipv6_finder(regex: re.Pattern[str]) -> Finder:
    def find(text: str, pos: int, _ctx: Context) -> Iterator[re.Match[str]]:
        last = pos
        tried = -1
        for hint in _IPV6_HINT.finditer(text, pos):
            at = hint.start()
            if at < last:
                continue
            start = _HEX_RUN.search(text, at - 45 if at > 45 else 0, at).start()  # type: ignore[union-attr]
            if start < last or start == tried:
                continue
            tried = start
            m = regex.match(text, start)
            if m:
                yield m
                last = m.end()

    return find
