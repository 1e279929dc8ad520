"""The scanning machinery: fast finders equal `finditer`, shapes, and channel holdback."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from aigw_gateway.guardrails import pii
from aigw_gateway.guardrails.finders import Context
from aigw_gateway.guardrails.restore import RestoreMap, rewriter
from aigw_gateway.guardrails.scanner import Channel, apply, find
from aigw_gateway.guardrails.shape import WINDOW_CAP, analyse
from tests.guardrails.corpus import CORPUS

FRAGMENTS = [t for _, t, _ in CORPUS] + [
    "1", "12", "2024", " ", "-", ".", "(", ")", "+", ":", "::", "@", "a", "AB", "ABCPE", "1234", "x@", "@y.com",
    "fe80", "0044", "4111", "1111 ", "GB82", "WEST", "\n", "é", "İ",
]  # fmt: skip


def _random_text(rnd: random.Random) -> str:
    return "".join(rnd.choice(FRAGMENTS) + rnd.choice(["", " ", ""]) for _ in range(rnd.randint(1, 12)))


@pytest.mark.parametrize("entity", ["email", "phone", "ssn", "creditCard", "ipAddress", "aadhaar", "pan"])
def test_fast_finders_yield_exactly_what_finditer_yields(entity):
    rnd = random.Random(entity)
    for detector in pii.builtin_detectors(entity, "mask"):
        if detector.finder is None:
            continue
        for _ in range(1500):
            text = _random_text(rnd)
            pos = rnd.randint(0, len(text))
            base = rnd.randint(0, pos)
            expected = [m.span() for m in detector.regex.finditer(text, pos)]
            got = [m.span() for m in detector.finder(text, pos, Context(text, base))]
            assert got == expected, (text, pos, base)


def test_shape_of_a_bounded_custom_pattern():
    shape = analyse(re.compile(r"EMP-\d{6}(?!\d)"))
    assert shape.window == 10 + 1 + 1
    assert shape.nonalpha.search("x") and not shape.nonalpha.search("EMP-1")


def test_shape_of_unbounded_or_unlisted_patterns_is_conservative():
    assert analyse(re.compile(r"EMP-\d+")).window == WINDOW_CAP
    assert analyse(re.compile(r"secret:.{4}")).nonalpha is None
    assert analyse(re.compile(r"(?<=id=)[a-z]{3}")).lookbehind == 3


def _channel(detectors):
    restore = RestoreMap()
    return Channel(detectors, rewriter(numbering=restore, restore=None, counts=Counter(), hash_key=b"", where="t"), _raise)


def _raise(exc):
    raise exc


def test_custom_unbounded_pattern_streams_like_the_whole_text():
    detector = pii.custom_detector("emp", r"EMP-\d+", "mask", 1)
    text = "ids EMP-1 EMP-123456789 and EMP-42."
    whole = apply(text, find((detector,), text), rewriter(numbering=RestoreMap(), restore=None, counts=Counter(), hash_key=b"", where="t"))
    for size in range(1, 8):
        channel = _channel((detector,))
        out = "".join(channel.feed(text[i : i + size]) for i in range(0, len(text), size)) + channel.flush()
        assert out == whole == "ids <EMP_1> <EMP_2> and <EMP_3>."
        assert channel.max_held <= len("EMP-123456789")


def test_channel_emits_clean_prose_with_at_most_a_word_held():
    channel = _channel(tuple(d for e in ("email", "creditCard", "phone") for d in pii.builtin_detectors(e, "mask")))
    # A trailing space may still join a phone or card number: it waits for the next character.
    assert channel.feed("Hello world, this is ") == "Hello world, this is"
    assert channel.feed("a stream") == " a "
    assert channel.held == "stream"
    assert channel.feed(" of 12") == "stream of"
    assert channel.held == " 12"
    assert channel.flush() == " 12"


def _rewrite():
    return rewriter(numbering=RestoreMap(), restore=None, counts=Counter(), hash_key=b"", where="t")


def test_a_hit_narrowed_past_the_decided_point_waits_for_earlier_hits():
    # The phone candidate "7 202 555 0143" is valid only without its leading "7 " (the validator
    # narrows it); a custom detector's match starts between the two and must win, as it does on
    # the whole text, whatever the chunking.
    detectors = (*pii.builtin_detectors("phone", "mask"), pii.custom_detector("c", r" 202 555 0143,? ?", "redact", 1))
    text = "call 7 202 555 0143, and more"
    whole = apply(text, find(detectors, text), _rewrite())
    assert whole == "call 7[REDACTED_C]and more"
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            channel = Channel(detectors, _rewrite(), _raise)
            out = channel.feed(text[:i]) + channel.feed(text[i:j]) + channel.feed(text[j:]) + channel.flush()
            assert out == whole, (i, j)


# -- the whole-text gate ------------------------------------------------------------------------

ENTITIES = ["email", "phone", "ssn", "creditCard", "ipAddress", "aadhaar", "pan", "iban"]
NO_REQUIRED = ["a", "AB", "ABCPE", "WEST", " ", "-", ".", "(", ")", "+", "\n", "é", "İ", "x", "GB", "fe", "<", ">"]


def _ungated(detectors, text):
    """The reference: every detector's `finditer` candidates, validated, selected (no gate, no finder)."""
    from aigw_gateway.guardrails.scanner import Hit, _select

    hits = []
    for detector in detectors:
        if detector.precheck is not None and not detector.precheck(text, 0):
            continue
        for m in detector.regex.finditer(text):
            span = detector.validate(text, m)
            if span is not None and span[1] > span[0]:
                hits.append(Hit(span[0], span[1], detector))
    return [(h.start, h.end, h.detector.name) for h in _select(hits, 0)]


def _found(detectors, text):
    return [(h.start, h.end, h.detector.name) for h in find(detectors, text)]


def test_find_with_its_gate_equals_the_ungated_scan():
    restore = RestoreMap()
    restore.placeholder("EMAIL", "a@b.co")
    from aigw_gateway.guardrails.restore import placeholder_detector

    detectors = (*(d for e in ENTITIES for d in pii.builtin_detectors(e, "mask")),
                 pii.custom_detector("employee-id", r"EMP-\d{6}(?!\d)", "mask", 20), placeholder_detector(restore))
    rnd = random.Random("gate")
    with_required = without = 0
    for i in range(3000):
        pieces = NO_REQUIRED if i % 3 == 0 else FRAGMENTS + ["EMP-123456", "<EMAIL_1>", "a@b.co"]
        text = "".join(rnd.choice(pieces) + rnd.choice(["", " "]) for _ in range(rnd.randint(1, 14)))
        if re.search(r"[0-9@:<]", text):
            with_required += 1
        else:
            without += 1
        assert _found(detectors, text) == _ungated(detectors, text), text
        single = detectors[i % len(detectors)]
        assert _found((single,), text) == _ungated((single,), text), (single.name, text)
    assert with_required > 1000 and without > 500  # both kinds of text were tried


def test_find_skips_a_detector_whose_required_characters_are_absent():
    # A detector that (wrongly) claims to need "@" shows the gate is applied: its match goes unseen
    # in a text without "@", and is found again once the text has one.
    import dataclasses

    ssn = pii.builtin_detectors("ssn", "mask")[0]
    liar = dataclasses.replace(ssn, requires="@")
    text = "ssn 078-05-1120 here"
    assert _found((ssn,), text) == [(4, 15, "ssn")]
    assert _found((liar,), text) == []
    assert _found((liar,), text + " @") == [(4, 15, "ssn")]
