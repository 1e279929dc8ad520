"""PII detection quality on a labelled corpus, and the validators behind it."""

from __future__ import annotations

from collections import Counter

import pytest

from aigw_gateway.guardrails import checks, pii
from aigw_gateway.guardrails.scanner import find
from tests.guardrails.corpus import CORPUS, ENTITIES

DETECTORS = tuple(d for entity in ENTITIES for d in pii.builtin_detectors(entity, "mask"))


def _score() -> dict[str, tuple[int, int, int]]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for entity, text, values in CORPUS:
        found = [(hit.detector.name, text[hit.start : hit.end]) for hit in find(DETECTORS, text)]
        expected = [(entity, value) for value in values]
        for item in found:
            (tp if item in expected else fp)[item[0]] += 1
        for item in expected:
            if item not in found:
                fn[item[0]] += 1
    return {e: (tp[e], fp[e], fn[e]) for e in ENTITIES}


def test_corpus_size_and_balance():
    assert len(CORPUS) >= 200
    for entity in ENTITIES:
        samples = [s for s in CORPUS if s[0] == entity]
        assert sum(1 for s in samples if s[2]) >= 10, entity
        assert sum(1 for s in samples if not s[2]) >= 10, entity


def test_precision_and_recall_per_entity(capsys):
    scores = _score()
    lines = ["", "entity       positives  negatives  TP  FP  FN  precision  recall"]
    for entity in ENTITIES:
        tp, fp, fn = scores[entity]
        samples = [s for s in CORPUS if s[0] == entity]
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        lines.append(
            f"{entity:<12} {sum(1 for s in samples if s[2]):>9}  {sum(1 for s in samples if not s[2]):>9}"
            f"  {tp:>2}  {fp:>2}  {fn:>2}  {precision:>9.3f}  {recall:>6.3f}"
        )
    with capsys.disabled():
        print("\n".join(lines))
    for entity in ENTITIES:
        tp, fp, fn = scores[entity]
        assert tp / (tp + fn) >= 0.98, (entity, scores[entity])
        assert tp / (tp + fp) >= 0.95, (entity, scores[entity])


@pytest.mark.parametrize(
    ("digits", "ok"),
    [("4111111111111111", True), ("79927398713", True), ("79927398710", False), ("4111111111111112", False)],
)
def test_luhn(digits, ok):
    assert checks.luhn_ok(digits) is ok


def test_verhoeff_reference_vectors():
    assert checks.verhoeff_ok("2363")  # the algorithm's textbook example: 236 with check digit 3
    assert not checks.verhoeff_ok("2364")
    assert checks.verhoeff_ok("123451")
    assert not checks.verhoeff_ok("123452")


def test_iban_registry_examples_pass_mod97_and_length():
    examples = ["DE89370400440532013000", "GB29NWBK60161331926819", "FR1420041010050500013M02606",
                "NO9386011117947", "MT84MALT011000012345MTLCAST001S", "LC55HEMM000100010012001200023015",
                "RU0304452522540817810538091310419"]  # fmt: skip
    for iban in examples:
        assert checks.IBAN_LENGTHS[iban[:2]] == len(iban)
        assert checks.iban_mod97_ok(iban)
    assert not checks.iban_mod97_ok("DE89370400440532013001")


@pytest.mark.parametrize(
    ("parts", "ok"),
    [(("123", "45", "6789"), True), (("000", "45", "6789"), False), (("666", "45", "6789"), False),
     (("900", "45", "6789"), False), (("123", "00", "6789"), False), (("123", "45", "0000"), False)],
)  # fmt: skip
def test_ssn_rules(parts, ok):
    assert checks.ssn_parts_ok(*parts) is ok


def test_pan_holder_type():
    assert checks.pan_ok("ABCPE1234F")
    assert not checks.pan_ok("ABCDE1234F")
