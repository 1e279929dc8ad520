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
