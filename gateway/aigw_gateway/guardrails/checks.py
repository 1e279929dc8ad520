"""Checksums and structural rules that turn a regex candidate into a detection.

Pure functions over the candidate's text; none of them sees more than the candidate (and, for a
bare SSN, a few characters before it), which keeps streamed and whole-text results identical.
"""

from __future__ import annotations

import ipaddress

# --- payment cards ------------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


# (first prefix, last prefix, allowed lengths): issuer identification number ranges of the
# networks that issue cards today. A number outside every range is not a payment card.
_CARD_RANGES: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),  # Visa
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (34, 34, frozenset({15})),  # American Express
    (37, 37, frozenset({15})),
    (6011, 6011, frozenset({16, 17, 18, 19})),  # Discover
    (644, 649, frozenset({16, 17, 18, 19})),
    (65, 65, frozenset({16, 17, 18, 19})),  # Discover / RuPay
    (3528, 3589, frozenset({16, 17, 18, 19})),  # JCB
    (300, 305, frozenset({14, 15, 16, 17, 18, 19})),  # Diners Club
    (3095, 3095, frozenset({14, 15, 16, 17, 18, 19})),
    (36, 36, frozenset({14, 15, 16, 17, 18, 19})),
    (38, 39, frozenset({14, 15, 16, 17, 18, 19})),
    (62, 62, frozenset({16, 17, 18, 19})),  # UnionPay
    (2200, 2204, frozenset({16, 17, 18, 19})),  # Mir
    (50, 50, frozenset({13, 14, 15, 16, 17, 18, 19})),  # Maestro
    (56, 58, frozenset({13, 14, 15, 16, 17, 18, 19})),
    (63, 63, frozenset({13, 14, 15, 16, 17, 18, 19})),
    (67, 67, frozenset({13, 14, 15, 16, 17, 18, 19})),
    (60, 60, frozenset({16})),  # RuPay
    (81, 82, frozenset({16})),
)


def card_iin_ok(digits: str) -> bool:
    n = len(digits)
    for lo, hi, lengths in _CARD_RANGES:
        width = len(str(lo))
        if n in lengths and lo <= int(digits[:width]) <= hi:
            return True
    return False


def card_groups_ok(candidate: str) -> bool:
    """Printed card numbers are unseparated, or grouped 4-4-4-4(-3), 4-6-5 or 4-6-4 with one separator kind."""
    seps = {ch for ch in candidate if ch in " -"}
    if not seps:
        return True
    if len(seps) > 1:
        return False
    groups = [len(g) for g in candidate.split(seps.pop())]
    if groups in ([4, 6, 5], [4, 6, 4]):
        return True
    return all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4 and len(groups) >= 4


def card_ok(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and card_groups_ok(candidate) and card_iin_ok(digits) and luhn_ok(digits)


# --- US social security numbers -----------------------------------------------------------------


def ssn_parts_ok(area: str, group: str, serial: str) -> bool:
    """SSA rules: no area 000, 666 or 900-999; no group 00; no serial 0000."""
    return area != "000" and area != "666" and area[0] != "9" and group != "00" and serial != "0000"


# --- Aadhaar (Verhoeff) -------------------------------------------------------------------------

_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


def verhoeff_ok(digits: str) -> bool:
    check = 0
    for i, ch in enumerate(reversed(digits)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[i % 8][ord(ch) - 48]]
    return check == 0


def aadhaar_ok(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    return len(digits) == 12 and digits[0] not in "01" and verhoeff_ok(digits) and len(set(digits)) > 1


# --- Indian PAN ---------------------------------------------------------------------------------

PAN_HOLDER_TYPES = frozenset("PCHFATBLJG")
"""4th letter: Person, Company, HUF, Firm, AOP, Trust, BOI, Local authority, Juridical person, Govt."""


def pan_ok(candidate: str) -> bool:
    return len(candidate) == 10 and candidate[3] in PAN_HOLDER_TYPES


# --- IBAN ---------------------------------------------------------------------------------------

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
"""IBAN length per country, from the SWIFT IBAN registry."""


def iban_mod97_ok(compact: str) -> bool:
    rearranged = compact[4:] + compact[:4]
    remainder = 0
    for ch in rearranged:
        remainder = (remainder * (100 if ch.isalpha() else 10) + int(ch, 36)) % 97
    return remainder == 1


def iban_span(candidate: str) -> int | None:
    """Length of the IBAN that starts `candidate` (spaces included), or None.

    The candidate regex may run on into a following group of letters or digits; the country's
    registered length decides where the IBAN ends, and it must end at a group boundary.
    """
    expected = IBAN_LENGTHS.get(candidate[:2])
    if expected is None:
        return None
    seen = 0
    for end, ch in enumerate(candidate, 1):
        if ch != " ":
            seen += 1
            if seen == expected:
                break
    else:
        return None
    if end < len(candidate) and candidate[end] != " ":
        return None
    compact = candidate[:end].replace(" ", "")
    return end if compact[2:4].isdigit() and iban_mod97_ok(compact) else None


# --- IP addresses -------------------------------------------------------------------------------


def ipv4_ok(candidate: str) -> bool:
    try:
        ipaddress.IPv4Address(candidate)
    except ValueError:
        return False
    return True


def ipv6_ok(candidate: str) -> bool:
    if candidate == "::" or sum(ch not in ":." for ch in candidate) < 1:
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True
