"""Finding detections in whole texts and in streams, with identical results.

A `Detector` is a compiled candidate regex plus a validator. `find` scans a whole text;
`Channel` scans a text that arrives in pieces and emits the longest prefix whose transformation
can no longer change. Both run the same selection: each detector's candidates in `finditer` order
(the validator may narrow a span), then leftmost, longest, highest-priority detections first,
never overlapping. The channel keeps, per detector, the position its `finditer` would resume at
in the whole text, so a restart never begins inside a candidate the whole-text scan consumed.

Holdback: a detector keeps undecided only the trailing run of its alphabet (see shape.py), at most
its window; the channel holds back the longest of those, and never less than a pending match.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import GatewayError
from .finders import Context, Finder
from .shape import Shape, analyse

Validator = Callable[[str, "re.Match[str]"], "tuple[int, int] | None"]
Precheck = Callable[[str, int], bool]
Rewrite = Callable[["Hit", str], "str | None"]

LEFT_CONTEXT = 64
"""Characters of emitted text kept for lookbehinds and validators that read before a candidate."""


def _whole(_text: str, m: re.Match[str]) -> tuple[int, int] | None:
    return m.span() if m.end() > m.start() else None


@dataclass(frozen=True, slots=True, eq=False)
class Detector:
    name: str
    """Counter and error name: `email`, `creditCard`, `custom:employee-id`, `placeholder`."""
    label: str
    """Placeholder label: EMAIL, CREDIT_CARD, EMPLOYEE_ID."""
    regex: re.Pattern[str]
    action: str
    priority: int = 50
    validate: Validator = _whole
    precheck: Precheck | None = None
    tail: re.Pattern[str] | None = None
    """Optional exact rule for the undecided end of a buffer: a pattern ending in \\Z."""
    shape: Shape = field(default=None)  # type: ignore[assignment]
    finder: Finder | None = None
    """Yields exactly what `regex.finditer(text, pos)` would, faster (finders.py)."""
    requires: str | None = None
    """A character class body (`0-9`, `@`) every match contains one of; None when unknown."""

    def __post_init__(self) -> None:
        if self.shape is None:
            object.__setattr__(self, "shape", analyse(self.regex))

    def undecided_from(self, buf: str, n: int) -> int:
        """First position of `buf[:n]` whose result may still change when text is appended."""
        window = self.shape.window
        start = n - window if n > window else 0
        if self.tail is not None:
            m = self.tail.search(buf, start)
            return m.start() if m else n
        nonalpha = self.shape.nonalpha
        if nonalpha is None:
            return start
        m = nonalpha.search(buf[start:n][::-1])
        return n - (m.start() if m else n - start)


@dataclass(frozen=True, slots=True)
class Hit:
    start: int
    end: int
    detector: Detector


def _select(hits: list[Hit], floor: int) -> list[Hit]:
    hits.sort(key=lambda h: (h.start, h.start - h.end, h.detector.priority))
    picked: list[Hit] = []
    for hit in hits:
        if hit.start >= floor:
            picked.append(hit)
            floor = hit.end
    return picked


def _candidates(detector: Detector, text: str, pos: int, final: int, hits: list[Hit], ctx: Context) -> int:
    """Add `detector`'s valid hits starting in [pos, final); return where its scan resumes."""
    resume = final
    if detector.precheck is not None and not detector.precheck(text, pos):
        return resume
    validate = detector.validate
    matches = detector.finder(text, pos, ctx) if detector.finder is not None else detector.regex.finditer(text, pos)
    for m in matches:
        if m.start() >= final:
            break
        span = validate(text, m)
        if span is not None and span[1] > span[0]:
            hits.append(Hit(span[0], span[1], detector))
        if m.end() > resume:
            resume = m.end()
    return resume


_GATES: dict[str, re.Pattern[str]] = {}


def _gate(chars: str) -> re.Pattern[str]:
    """The compiled class for a set of required characters, compiled once per set."""
    gate = _GATES.get(chars)
    if gate is None:
        gate = _GATES[chars] = re.compile(f"[{chars}]")
    return gate


def _first(chars: str, text: str) -> int:
    """Where the first character of the class `[chars]` is in `text`, or -1."""
    if len(chars) == 1 and chars not in "\\^-[]":
        return text.find(chars)  # a plain character: str.find is ~30x faster than a regex
    m = _gate(chars).search(text)
    return m.start() if m else -1


def find(detectors: tuple[Detector, ...], text: str) -> list[Hit]:
    """Every selected detection in a whole text, in order.

    A detector whose required characters (`requires`) the text lacks cannot match, so it is not
    run: one search per distinct set of required characters (most detectors need a digit), and a
    text with none of them (most sentences of most prompts) costs those searches only. The digit
    clusters (finders.py) start at the first digit, so their scan starts there too."""
    hits: list[Hit] = []
    end = len(text)
    ctx = Context(text)
    first: dict[str, int] = {}
    for detector in detectors:
        needs = detector.requires
        if needs is not None:
            at = first.get(needs)
            if at is None:
                at = first[needs] = _first(needs, text)
                if at > 0 and needs == "0-9":
                    ctx.base = at
            if at < 0:
                continue
        _candidates(detector, text, 0, end, hits, ctx)
    return _select(hits, 0) if hits else hits


def apply(text: str, hits: list[Hit], rewrite: Rewrite, start: int = 0, end: int | None = None) -> str:
    """`text[start:end]` with each hit replaced by `rewrite(hit, value)` (None keeps the value)."""
    if not hits:
        return text[start:end] if start or end is not None else text
    out: list[str] = []
    at = start
    for hit in hits:
        replacement = rewrite(hit, text[hit.start : hit.end])
        if replacement is not None:
            out.append(text[at : hit.start])
            out.append(replacement)
            at = hit.end
    out.append(text[at:end])
    return "".join(out)


class Channel:
    """One stream of text (a choice's content, a tool call's arguments) scanned incrementally.

    `on_error` decides what an unexpected failure inside the scan means: it raises (failMode
    closed) or returns, and then the channel passes its held and all later text through unscanned
    (failMode open). Gateway errors such as GuardrailBlocked always propagate.
    """

    __slots__ = ("_detectors", "_rewrite", "_on_error", "_buf", "_done", "_resume", "_pending", "_left", "_raw",
                 "_runs", "_exact_tails", "_fixed", "_gate", "max_held")  # fmt: skip

    def __init__(self, detectors: tuple[Detector, ...], rewrite: Rewrite, on_error: Callable[[Exception], None]) -> None:
        self._detectors = detectors
        self._rewrite = rewrite
        self._on_error = on_error
        self._buf = ""
        self._done = 0  # buf[:_done] is emitted text kept as left context
        self._resume = [0] * len(detectors)
        self._pending: list[Hit] = []  # decided hits a validator moved past the decided point
        self._left = max([LEFT_CONTEXT, *(d.shape.lookbehind for d in detectors)])
        self._raw = False
        # Undecided tails: detectors sharing an alphabet share one run counter (the longest window
        # wins); [chars, nonalpha, window, run] where the run is the alphabet's run at the text's end.
        groups: dict[str, list] = {}
        for d in detectors:
            shape = d.shape
            if d.tail is None and shape.nonalpha is not None:
                key = shape.chars if shape.chars is not None else shape.nonalpha.pattern + str(shape.nonalpha.flags)
                group = groups.setdefault(key, [shape.chars, shape.nonalpha, 0, 0])
                group[2] = max(group[2], shape.window)
        # A group whose alphabet and window another group's contain never decides the minimum.
        spelled = [g for g in groups.values() if g[0] is not None]
        self._runs = [
            g for g in groups.values()
            if g[0] is None or not any(h is not g and set(g[0]) <= set(h[0]) and g[2] <= h[2] and
                                       (set(g[0]) != set(h[0]) or g[2] != h[2] or spelled.index(h) < spelled.index(g))
                                       for h in spelled)
        ]  # fmt: skip
        self._exact_tails = tuple(d for d in detectors if d.tail is not None)
        self._fixed = max((d.shape.window for d in detectors if d.tail is None and d.shape.nonalpha is None), default=0)
        needs = [d.requires for d in detectors]
        # When no detector can match without one of a few characters (digits, "@", ":", "<"), a
        # step whose unscanned text holds none of them has nothing to scan.
        self._gate = _gate("".join(sorted(set(needs)))) if needs and None not in needs else None  # type: ignore[arg-type]
        self.max_held = 0
        """Most characters this channel ever held back at once."""

    @property
    def held(self) -> str:
        """Text received but not yet emitted (raw)."""
        return self._buf[self._done :]

    def feed(self, text: str) -> str:
        if not text:
            return ""
        self._buf += text
        if self._raw:
            return self._step(None)
        n = len(self._buf)
        size = len(text)
        decided = n - self._fixed
        backwards = None
        for group in self._runs:
            chars = group[0]
            if chars is not None:
                kept = size - len(text.rstrip(chars))
            else:
                if backwards is None:
                    backwards = text[::-1]
                m = group[1].search(backwards)
                kept = m.start() if m else size
            run = group[3] = group[3] + size if kept == size else kept
            point = n - (run if run < group[2] else group[2])
            if point < decided:
                decided = point
        for detector in self._exact_tails:
            point = detector.undecided_from(self._buf, n)
            if point < decided:
                decided = point
        return self._step(decided if decided > 0 else 0)

    def flush(self) -> str:
        return self._step(len(self._buf))

    def release(self) -> str:
        """Stop scanning: the held text, unscanned; later text passes through as it comes."""
        self._raw = True
        held, self._buf, self._done = self.held, "", 0
        return held

    def _step(self, decided: int | None) -> str:
        if not self._raw and decided is not None:
            try:
                return self._advance(decided)
            except GatewayError:
                raise
            except Exception as exc:  # noqa: BLE001 - failMode decides
                self._on_error(exc)
                self._raw = True
        held, self._buf, self._done = self.held, "", 0
        return held

    def _advance(self, decided: int) -> str:
        """Scan what became decided (positions before `decided` cannot change any more) and emit."""
        buf = self._buf
        n = len(buf)
        hits = self._pending
        resume = self._resume
        lowest = min(resume, default=n)
        if self._gate is not None and lowest < decided and self._gate.search(buf, lowest) is None:
            self._resume = resume = [r if r > decided else decided for r in resume]
        else:
            ctx = Context(buf, lowest)
            for i, detector in enumerate(self._detectors):
                if resume[i] < decided:
                    resume[i] = _candidates(detector, buf, resume[i], decided, hits, ctx)
        done = self._done
        # A validator may narrow a candidate to start past `decided` (a dropped leading group);
        # such a hit waits until every hit that could start before it is known.
        later = [h for h in hits if h.start >= decided] if hits else hits
        picked = _select([h for h in hits if h.start < decided], done) if len(later) < len(hits) else []
        upto = max(decided, done, picked[-1].end if picked else 0)
        out = apply(buf, picked, self._rewrite, done, upto)
        if n - upto > self.max_held:
            self.max_held = n - upto
        # Keep the undecided text plus the left context its lookbehinds and validators read.
        cut = min(upto, *resume) - self._left if resume else upto - self._left
        later = [h for h in later if h.start >= upto]
        if cut > 0:
            self._buf = buf[cut:]
            self._resume = [r - cut for r in resume]
            self._done = upto - cut
            self._pending = [Hit(h.start - cut, h.end - cut, h.detector) for h in later]
        else:
            self._done = upto
            self._pending = later
        return out
