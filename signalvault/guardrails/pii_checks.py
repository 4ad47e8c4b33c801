"""Check-digit and range rules that python-stdnum does not cover or that run on every digit run
(cards, SSN, IBAN, Singapore NRIC), written from each format's public definition; pure functions
over normalised strings, plus the shared context-word test. Imports nothing local.
"""

from __future__ import annotations

import re

Candidate = tuple[str, int, int, float]  # kind, start, end, score: a finding before resolution

# ISO 13616 registry: total IBAN length per country code.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


# Each digit doubled, its digits summed: 7 -> 14 -> 5.
_DOUBLED = str.maketrans("0123456789", "0246813579")


def luhn_ok(digits: str) -> bool:
    """Luhn mod-10 (cards, Canadian SIN).

    Runs on every long digit run: `translate` and a sum over bytes do the per-digit work at C
    speed (an ASCII digit's byte is its value + 48), ~10x fewer instructions than int() per digit.
    """
    if not digits.isascii():
        digits = "".join(str(int(d)) for d in digits)  # other scripts' digits: their values
    reverse = digits[::-1]
    summed = reverse[0::2] + reverse[1::2].translate(_DOUBLED)
    return (sum(summed.encode()) - 48 * len(summed)) % 10 == 0


def card_brand_ok(digits: str) -> bool:
    """Issuer prefix and length of the major brands (Visa, Mastercard, Amex, Discover, JCB, ...).

    `digits`: at least four of them (card numbers have 12-19).
    """
    n = len(digits)
    four = int(digits[:4])  # one int() for every numeric prefix test: int() is the costly part
    two, three = four // 100, four // 10
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if two in (36, 38, 39) or 300 <= three <= 305:
        return n in (14, 16)
    if digits.startswith(("6011", "65")) or 644 <= three <= 649:
        return 16 <= n <= 19
    if two == 35:
        return 16 <= n <= 19  # JCB (officially 3528-3589; test generators use all of 35xx)
    if digits.startswith(("2131", "1800")):
        return n == 15  # JCB's original ranges
    if two == 62 or 81 <= two <= 82:
        return 16 <= n <= 19  # UnionPay
    if two == 50 or 56 <= two <= 69 or digits.startswith("0604"):
        return 12 <= n <= 19  # Maestro (and its UK 0604 range)
    return False


def ssn_ok(digits: str) -> bool:
    """SSA rules: area 000, 666 and 900-999, group 00 and serial 0000 are never issued."""
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    # Publicised sample numbers (Woolworth wallet card, SSA advertisements) are not anyone's.
    return digits not in ("078051120", "219099999", "123456789")


def iban_ok(compact: str) -> bool:
    """Country length plus ISO 7064 mod-97 on the upper-case, space-free IBAN."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    rotated = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rotated)) % 97 == 1


def sg_nric_ok(value: str) -> bool:
    """Singapore NRIC/FIN (S, T, F, G + 7 digits + check letter)."""
    weights = (2, 7, 6, 5, 4, 3, 2)
    total = sum(int(d) * w for d, w in zip(value[1:8], weights, strict=True))
    total += 4 if value[0] in "TG" else 0
    letters = "JZIHGFEDCBA" if value[0] in "ST" else "XWUTRQPNMLK"
    return letters[total % 11] == value[8]


def is_lower_case(text: str) -> bool:
    """Whether `text` has no upper-case letter (one C-speed comparison, not a Python loop)."""
    return text.lower() == text


def context_near(
    text: str, start: int, end: int, words: re.Pattern[str], before: int = 56, after: int = 24
) -> bool:
    """Whether `words` occurs shortly before the span, or in the few characters after it.

    Labels mostly precede values ("SSN: ..."), but phone lists put them after ("... office")
    and sentences too ("... is my BSN").
    """
    low = max(0, start - before)
    while 0 < low < start and text[low - 1].isalnum():
        low += 1  # never read half a word: "apo" must not look like "po"
    window = text[low:start] + " " + text[end : end + after]
    return words.search(window) is not None
