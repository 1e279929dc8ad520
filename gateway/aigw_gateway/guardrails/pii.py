"""Built-in PII detectors: a candidate regex compiled at import, then a validator.

Holdback in a stream: a detector leaves undecided only the run of its alphabet at the end of the
buffer (in prose, the last word or number group), and never more than its window, the widest
match plus lookahead plus one (`DETECTOR_WINDOWS`, computed by shape.py):

| detector   | alphabet held at the end of a buffer        | window |
|------------|---------------------------------------------|--------|
| email      | letters, digits, `._%+-@`                   | 320    |
| phone      | digits, `+().-` and spaces                  | 137    |
| ssn        | digits, `-` and spaces                      | 14     |
| creditCard | digits, `-.` and spaces                     | 40     |
| ipAddress  | v4: digits, `.`; v6: hex digits, `:.`       | 18, 48 |
| iban       | capital letters, digits and spaces          | 46     |
| aadhaar    | digits, `-.` and spaces                     | 17     |
| pan        | capital letters and digits                  | 12     |
"""

from __future__ import annotations

import re

import phonenumbers

from . import checks
from .finders import digit_finder, email_finder, ipv6_finder, pan_finder
from .scanner import Detector
from .shape import analyse

_DIGIT = re.compile(r"[0-9]")


def _has_digit(text: str, pos: int) -> bool:
    return _DIGIT.search(text, pos) is not None


def _has_colon(text: str, pos: int) -> bool:
    return text.find(":", pos) >= 0


def _has_at(text: str, pos: int) -> bool:
    return text.find("@", pos) >= 0


# --- email --------------------------------------------------------------------------------------

EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-@])"
    r"[A-Za-z0-9_%+\-](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}"
    r"(?![A-Za-z0-9\-@]|\.[A-Za-z0-9])", re.ASCII)


def _email(_text: str, m: re.Match[str]) -> tuple[int, int] | None:
    local = m.group().partition("@")[0]
    return None if ".." in local else m.span()


# --- phone --------------------------------------------------------------------------------------

PHONE = re.compile(
    r"(?<![\w+\-./,])(?:\+|00)?(?:\(\d{1,4}\)|\d)(?:[ .\-]?(?:\(\d{1,4}\)|\d)){6,18}(?![\w+]|[.\-]\d)", re.ASCII)
_NANP = re.compile(r"(?:1[ .\-])?(?:\(\d{3}\) ?|\d{3}[ .\-])\d{3}[ .\-]\d{4}")
_PHONE_SEP = re.compile(r"[ .\-]+")
_DOTTED = re.compile(r"\d+(?:\.\d+)+")


def _phone_valid(candidate: str) -> bool:
    digits = sum(ch.isdigit() for ch in candidate)
    if not 7 <= digits <= 15 or _DOTTED.fullmatch(candidate) and not _NANP.fullmatch(candidate):
        return False  # dotted runs without a "+" are versions or addresses unless NANP-shaped
    if candidate[0] == "+" or candidate.startswith("00"):
        number = "+" + candidate[2:] if candidate[0] == "0" else candidate
        region = None
    elif _NANP.fullmatch(candidate):
        number, region = candidate, "US"
    else:
        return False  # national numbers without a country code: North American format only
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, region))
    except phonenumbers.NumberParseException:
        return False


def _phone(_text: str, m: re.Match[str]) -> tuple[int, int] | None:
    start, end = m.span()
    candidate = m.group()
    if _phone_valid(candidate):
        return start, end
    # The candidate regex joins neighbouring numbers separated by single spaces ("+1 415 555
    # 2671 2 times"): retry without trailing groups, then without one leading group.
    cuts = [s.start() for s in _PHONE_SEP.finditer(candidate)]
    for cut in reversed(cuts[-3:]):
        if _phone_valid(candidate[:cut]):
            return start, start + cut
    if cuts and candidate[0] not in "+(":
        rest = _PHONE_SEP.match(candidate, cuts[0]).end()  # type: ignore[union-attr]
        if _phone_valid(candidate[rest:]):
            return start + rest, end
    return None


# --- SSN ----------------------------------------------------------------------------------------

SSN = re.compile(r"(?<![\w\-])(?:(\d{3})([ \-])(\d{2})\2(\d{4})|(\d{3})(\d{2})(\d{4}))(?![\w\-]|[ ]\d)", re.ASCII)
_SSN_CONTEXT = re.compile(r"(?i)\b(?:ssn|ss#|social\s+security(?:\s+(?:number|no\.?|#))?)\W{0,3}(?:\w+\W+){0,3}\Z")


def _ssn(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    if m.group(1):
        ok = checks.ssn_parts_ok(m.group(1), m.group(3), m.group(4))
    else:  # nine bare digits are an SSN only when the text just said so
        ok = checks.ssn_parts_ok(m.group(5), m.group(6), m.group(7)) and bool(
            _SSN_CONTEXT.search(text, max(0, m.start() - 40), m.start())
        )
    return m.span() if ok else None


# --- cards, Aadhaar, PAN, IBAN, IP --------------------------------------------------------------

CARD = re.compile(r"(?<![\w\-.])\d(?:[ \-]?\d){12,18}(?![\w]|[ \-.]?\d)", re.ASCII)
AADHAAR = re.compile(r"(?<![\w\-.])[2-9]\d{3}([ \-]?)\d{4}\1\d{4}(?![\w]|[ \-.]?\d)", re.ASCII)
PAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{5}[0-9]{4}[A-Z](?![A-Za-z0-9])", re.ASCII)
# Starts with a character class (the lookbehind follows it), so that `re` skips to capitals fast.
IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z][0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])", re.ASCII)
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)", re.ASCII)
IPV6 = re.compile(
    r"(?<![\w:.])(?:(?:[0-9A-Fa-f]{0,4}:){2,6}(?:\d{1,3}\.){3}\d{1,3}|(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4})"
    r"(?![\w:]|\.\d)", re.ASCII)


def _check(fn):
    def validate(_text: str, m: re.Match[str]) -> tuple[int, int] | None:
        return m.span() if fn(m.group()) else None

    return validate


def _card(_text: str, m: re.Match[str]) -> tuple[int, int] | None:
    if checks.card_ok(m.group()):
        return m.span()
    # A number glued to the card by one space ("qty 2 4111 1111 1111 1111"): drop one group.
    candidate = m.group()
    first, last = candidate.find(" "), candidate.rfind(" ")
    if first > 0 and checks.card_ok(candidate[first + 1 :]):
        return m.start() + first + 1, m.end()
    if last > 0 and checks.card_ok(candidate[:last]):
        return m.start(), m.start() + last
    return None


def _iban(_text: str, m: re.Match[str]) -> tuple[int, int] | None:
    length = checks.iban_span(m.group())
    return (m.start(), m.start() + length) if length else None


_BUILTIN: dict[str, tuple[Detector, ...]] = {
    "creditCard": (Detector("creditCard", "CREDIT_CARD", CARD, "mask", 10, _card, finder=digit_finder(CARD, 13), requires="0-9"),),
    "iban": (Detector("iban", "IBAN", IBAN, "mask", 11, _iban, _has_digit, requires="0-9"),),
    "ssn": (Detector("ssn", "SSN", SSN, "mask", 12, _ssn, finder=digit_finder(SSN, 9), requires="0-9"),),
    "aadhaar": (Detector("aadhaar", "AADHAAR", AADHAAR, "mask", 13, _check(checks.aadhaar_ok),
                         finder=digit_finder(AADHAAR, 12), requires="0-9"),),
    "pan": (Detector("pan", "PAN", PAN, "mask", 14, _check(checks.pan_ok), finder=pan_finder(PAN), requires="0-9"),),
    "email": (Detector("email", "EMAIL", EMAIL, "mask", 15, _email, _has_at, shape=analyse(EMAIL, cap=320),
                       finder=email_finder(EMAIL), requires="@"),),
    "phone": (Detector("phone", "PHONE", PHONE, "mask", 16, _phone, finder=digit_finder(PHONE, 7), requires="0-9"),),
    "ipAddress": (
        Detector("ipAddress", "IP_ADDRESS", IPV4, "mask", 17, _check(checks.ipv4_ok),
                 finder=digit_finder(IPV4, 4, need="."), requires="0-9"),
        Detector("ipAddress", "IP_ADDRESS", IPV6, "mask", 18, _check(checks.ipv6_ok), _has_colon,
                 finder=ipv6_finder(IPV6), requires=":"),
    ),
}  # fmt: skip

DETECTOR_WINDOWS: dict[str, tuple[int, ...]] = {k: tuple(d.shape.window for d in v) for k, v in _BUILTIN.items()}


def builtin_detectors(entity: str, action: str) -> tuple[Detector, ...]:
    """The detectors behind one `PiiEntity` name (ipAddress has two), with the policy's action."""
    return tuple(
        Detector(name=d.name, label=d.label, regex=d.regex, action=action, priority=d.priority,
                 validate=d.validate, precheck=d.precheck, shape=d.shape, finder=d.finder, requires=d.requires)
        for d in _BUILTIN[entity]
    )  # fmt: skip


def label_for(name: str) -> str:
    """Placeholder label of a custom detector: `employee-id` -> `EMPLOYEE_ID`."""
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def custom_detector(name: str, pattern: str, action: str, priority: int) -> Detector:
    return Detector(name=f"custom:{name}", label=label_for(name), regex=re.compile(pattern), action=action, priority=priority)
