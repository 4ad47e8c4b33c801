"""Check-digit and range rules for PII numbers, written from each format's public definition;
pure functions over normalised strings, plus the shared context-word test. Imports nothing local.
"""

from __future__ import annotations

import datetime
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


_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # digit * 2, digits summed


def luhn_ok(digits: str) -> bool:
    """Luhn mod-10 (cards, Canadian SIN)."""
    reverse = digits[::-1]
    total = sum(map(int, reverse[0::2])) + sum(_LUHN_DOUBLED[int(d)] for d in reverse[1::2])
    return total % 10 == 0


def card_brand_ok(digits: str) -> bool:
    """Issuer prefix and length of the major brands (Visa, Mastercard, Amex, Discover, JCB, ...)."""
    n = len(digits)
    two, four = int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return n in (14, 16)
    if digits.startswith(("6011", "65")) or 644 <= int(digits[:3]) <= 649:
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


def _verhoeff_tables() -> tuple[list[list[int]], list[list[int]]]:
    # d is the dihedral group D5 (0-4 rotations, 5-9 reflections); p[i] is p[1] applied i times.
    def mul(j: int, k: int) -> int:
        if j < 5:
            return (j + k) % 5 if k < 5 else 5 + (j + k) % 5
        return 5 + (j - k) % 5 if k < 5 else (j - k) % 5

    d = [[mul(j, k) for k in range(10)] for j in range(10)]
    p = [list(range(10)), [1, 5, 7, 6, 2, 8, 3, 0, 9, 4]]
    for _ in range(6):
        p.append([p[1][x] for x in p[-1]])
    return d, p


_VERHOEFF_D, _VERHOEFF_P = _verhoeff_tables()


def verhoeff_ok(digits: str) -> bool:
    """Verhoeff dihedral check (Aadhaar)."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[i % 8][int(ch)]]
    return c == 0


def aadhaar_ok(digits: str) -> bool:
    """12 digits, first digit 2-9, Verhoeff check digit."""
    return len(digits) == 12 and digits[0] not in "01" and verhoeff_ok(digits)


def nhs_ok(digits: str) -> bool:
    """UK NHS number: weights 10..2, check = 11 - sum mod 11 (10 is never issued)."""
    if len(digits) != 10 or len(set(digits)) == 1:
        return False
    check = 11 - sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True)) % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(digits[9])


def sin_ok(digits: str) -> bool:
    """Canadian SIN: 9 digits, Luhn; 0 and 8 are not used as first digit."""
    return len(digits) == 9 and digits[0] not in "08" and luhn_ok(digits)


def de_tax_id_ok(digits: str) -> bool:
    """German Steuer-IdNr: 11 digits, one digit repeated in the first ten, ISO 7064 MOD 11,10."""
    if len(digits) != 11 or digits[0] == "0":
        return False
    counts = sorted((digits[:10].count(d) for d in set(digits[:10])), reverse=True)
    if counts[0] not in (2, 3) or (len(counts) > 1 and counts[1] > 1):
        return False
    product = 10
    for ch in digits[:10]:
        total = (int(ch) + product) % 10 or 10
        product = total * 2 % 11
    return (11 - product) % 10 == int(digits[10])


def au_tfn_ok(digits: str) -> bool:
    """Australian TFN (9 digits): weighted sum divisible by 11."""
    weights = (1, 4, 3, 7, 5, 8, 6, 9, 10)
    return (
        len(digits) == 9 and sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11 == 0
    )


def au_medicare_ok(digits: str) -> bool:
    """Australian Medicare card: first digit 2-6, weighted check in position 9, issue digit."""
    if len(digits) not in (10, 11) or digits[0] not in "23456":
        return False
    weights = (1, 3, 7, 9, 1, 3, 7, 9)
    return sum(int(d) * w for d, w in zip(digits[:8], weights, strict=True)) % 10 == int(digits[8])


def kr_rrn_ok(digits: str) -> bool:
    """Korean RRN YYMMDD-SNNNNNC: real birth date, sex/century digit, weighted mod-11 check."""
    if len(digits) != 13 or digits[6] not in "12345678":
        return False
    century = 1900 if digits[6] in "1256" else 2000
    try:
        datetime.date(century + int(digits[:2]), int(digits[2:4]), int(digits[4:6]))
    except ValueError:
        return False
    weights = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
    total = sum(int(d) * w for d, w in zip(digits[:12], weights, strict=True))
    return (11 - total % 11) % 10 == int(digits[12])


_NIF_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def es_nif_ok(value: str) -> bool:
    """Spanish DNI/NIF (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter), mod 23."""
    body = value[:-1]
    if body[0] in "XYZ":
        body = str("XYZ".index(body[0])) + body[1:]
    return body.isdigit() and _NIF_LETTERS[int(body) % 23] == value[-1]


def sg_nric_ok(value: str) -> bool:
    """Singapore NRIC/FIN (S, T, F, G + 7 digits + check letter)."""
    weights = (2, 7, 6, 5, 4, 3, 2)
    total = sum(int(d) * w for d, w in zip(value[1:8], weights, strict=True))
    total += 4 if value[0] in "TG" else 0
    letters = "JZIHGFEDCBA" if value[0] in "ST" else "XWUTRQPNMLK"
    return letters[total % 11] == value[8]


# Odd-position values of the Italian codice fiscale check character (0-9 then A-Z).
_CF_ODD = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20,
           11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23]  # fmt: skip


def it_fiscal_code_ok(value: str) -> bool:
    """Italian codice fiscale: 16 characters, last one a check letter over the first 15."""
    total = 0
    for i, ch in enumerate(value[:15]):
        index = int(ch) if ch.isdigit() else ord(ch) - 55
        if i % 2 == 0:
            total += _CF_ODD[index]
        else:
            total += index if ch.isdigit() else index - 10
    return chr(65 + total % 26) == value[15]


def context_near(text: str, start: int, end: int, words: re.Pattern[str], before: int = 56) -> bool:
    """Whether `words` occurs shortly before the span, or in the few characters after it.

    Labels mostly precede values ("SSN: ..."), but phone lists put them after ("... office").
    """
    low = max(0, start - before)
    while 0 < low < start and text[low - 1].isalnum():
        low += 1  # never read half a word: "apo" must not look like "po"
    window = text[low:start] + " " + text[end : end + 24]
    return words.search(window) is not None
