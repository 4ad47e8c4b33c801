"""The number rules' shortcuts give the answers of the plain computations they replace."""

from __future__ import annotations

import datetime
import importlib
import random
import re

import pytest

from signalvault.guardrails.pii import PiiDetector
from signalvault.guardrails.pii_checks import luhn_ok
from signalvault.guardrails.pii_ids import scan_lettered, touches_letters
from signalvault.guardrails.pii_national import NATIONAL_IDS
from signalvault.guardrails.pii_numbers import (
    _CUE_GROUP,
    _CUE_PAIRS,
    _RUN,
    _RUN_ASCII,
    _cues_before,
)
from signalvault.guardrails.pii_patterns import _local_start

# Digits of three scripts: ASCII, Arabic-Indic, full-width.
_DIGITS = "0123456789\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\uff10\uff15"


def _luhn_by_hand(digits: str) -> bool:
    total = 0
    for i, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def test_luhn_matches_the_textbook_sum_in_every_script() -> None:
    rng = random.Random(5)
    for _ in range(5000):
        digits = "".join(rng.choice(_DIGITS) for _ in range(rng.randint(1, 20)))
        assert luhn_ok(digits) == _luhn_by_hand(digits), digits
    assert luhn_ok("\u0664" + "\u0661" * 15)  # 4111 1111 1111 1111 in Arabic-Indic digits


def test_ascii_run_regex_finds_the_same_runs_on_ascii_text() -> None:
    rng = random.Random(6)
    alphabet = "0123456789 .-()+/xXetT:abc\n"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        assert [m.span() for m in _RUN.finditer(text)] == [
            m.span() for m in _RUN_ASCII.finditer(text)
        ], text


# Lettered IDs from the detector's tables, each also with one character changed.
_IDS = [
    "DE89 3704 0044 0532 0130 00",
    "gb82west12345698765432",
    "AB 12 34 56 C",
    "ABCPE1234F",
    "12345678Z",
    "12345678-Z",
    "X1234567L",
    "X-1234567-L",
    "RSSMRA85T10A562S",
    "S1234567D",
    "131052-308T",
    "131052A308T",
    "BOXW310820HNERXN09",
]
_CONTEXT = [*"aAbBxXT .-_:/(+#1\u00e9", "", "", " ", "\n", "IBAN ", "NI ", "AB ", "x-", "9"]


@pytest.mark.parametrize("seed", range(3))
def test_touches_letters_says_no_only_where_no_lettered_id_starts(seed: int) -> None:
    rng = random.Random(seed)
    found_some = 0
    for _ in range(4000):
        value = rng.choice(_IDS)
        if rng.random() < 0.3:
            i = rng.randrange(len(value))
            value = value[:i] + rng.choice("0123456789ABXZ -") + value[i + 1 :]
        text = "".join(rng.choice(_CONTEXT) for _ in range(2)) + value
        text += "".join(rng.choice(_CONTEXT) for _ in range(2))
        for match in _RUN.finditer(text):
            start, end = match.span()
            found = list(scan_lettered(text, start))
            found_some += bool(found)
            assert not found or touches_letters(text, start, end), (text, start, found)
    assert found_some > 100  # the texts do hold IDs


def _cues_word_by_word(window: str) -> dict[str, int]:
    """Each regex word in turn, the last of each group kept: what `_cues_before` shortcuts."""
    found: dict[str, int] = {}
    previous = ""
    for match in re.finditer(r"[a-z]+#?", window.lower()):
        word = match.group()
        group = _CUE_GROUP.get(word) or _CUE_PAIRS.get(f"{previous} {word}")
        if group:
            found[group] = len(window) - match.end()
        previous = word
    return found


def test_cue_distances_match_reading_word_by_word() -> None:
    rng = random.Random(7)
    words = ["phone", "Card", "SSN", "ss#", "social", "security", "order", "tel", "the", "x", "id"]
    glue = [" ", ", ", ": ", "-", "(", "\n", "1", " 42 ", ".", "\u00e9"]
    for _ in range(4000):
        window = "".join(rng.choice(words) + rng.choice(glue) for _ in range(rng.randint(0, 8)))
        assert _cues_before(window, len(window)) == _cues_word_by_word(window), window


def _local_start_by_hand(text: str, at: int) -> int:
    start = at
    while start > max(0, at - 64) and (text[start - 1].isalnum() or text[start - 1] in ".%+-_"):
        start -= 1
    while start < at and not text[start].isalnum():
        start += 1
    return start


def test_email_local_part_matches_the_character_walk() -> None:
    rng = random.Random(8)
    pieces = [
        "jane",
        ".",
        "doe",
        "_",
        "-",
        "+",
        "%",
        " ",
        "\u00e9t\u00e9",
        "\u0661",
        "x" * 30,
        "(",
        "@",
    ]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))) + "@example.org"
        for at in range(len(text)):
            if text[at] == "@":
                assert _local_start(text, at) == _local_start_by_hand(text, at), (text, at)


def test_seventeen_digits_ending_the_text_are_not_a_chinese_id_with_an_x() -> None:
    # 11010519491231002X is a valid resident ID; without its X the number is no ID, and a span
    # past the end of the text must never come out.
    assert PiiDetector()("resident id 11010519491231002X")[0].kind == "CN_RIC"
    assert PiiDetector()("resident id 11010519491231002") == []


# The rows whose python-stdnum validator sits behind a cheap necessary test, and its module.
_PRECHECKED = {
    "US_ITIN": "us.itin",
    "ABA_ROUTING": "us.rtn",
    "CA_SIN": "ca.sin",
    "NL_BSN": "nl.bsn",
    "AU_TFN": "au.tfn",
    "AU_ACN": "au.acn",
    "IL_ID": "il.idnr",
    "ZA_ID": "za.idnr",
    "DK_CPR": "dk.cpr",
    "UK_NHS": "gb.nhs",
    "DE_TAX_ID": "de.idnr",
    "PL_PESEL": "pl.pesel",
    "BR_CPF": "br.cpf",
    "BR_CNPJ": "br.cnpj",
    "AU_ABN": "au.abn",
    "NO_FNR": "no.fodselsnummer",
    "BE_NN": "be.nn",
    "FR_NIR": "fr.nir",
    "CH_AHV": "ch.ssn",
    "TH_PIN": "th.pin",
    "IN_AADHAAR": "in_.aadhaar",
}
# Valid numbers expected among the samples (50 unless named): one number in ~100 passes two
# check digits, or a check of 97 or 89 values, and fewer with a date as well.
_MIN_VALID = {"BR_CPF": 25, "BR_CNPJ": 25, "AU_ABN": 25, "FR_NIR": 25, "NO_FNR": 5, "BE_NN": 10}


@pytest.mark.parametrize("kind", sorted(_PRECHECKED))
def test_prechecked_validators_answer_as_stdnum(kind: str) -> None:
    row = next(row for row in NATIONAL_IDS if row.kind == kind)
    is_valid = importlib.import_module(f"stdnum.{_PRECHECKED[kind]}").is_valid
    lengths = sorted({sum(shape) for shape in row.shapes})
    rng = random.Random(kind)
    valid = 0
    for n in range(6000):
        number = "".join(rng.choice("0123456789") for _ in range(rng.choice(lengths)))
        if n % 3 == 0:  # the prefix valid numbers need: ITIN area 9xx, a date of birth
            day, month = f"{rng.randint(1, 28):02}", f"{rng.randint(1, 12):02}"
            # Steuer-ID: one digit of the first ten written twice (drawn for it alone, so the
            # other kinds' samples stay as they were).
            distinct = rng.sample("123456789", 9) if kind == "DE_TAX_ID" else []
            distinct += [rng.choice(distinct)] if distinct else []
            prefix = {
                "US_ITIN": "9",
                "ZA_ID": f"{number[:2]}{month}{day}",
                "DK_CPR": day + month,
                "DE_TAX_ID": "".join(distinct),
                "CH_AHV": "756",
                "NO_FNR": f"{day}{month}{number[4:6]}0",
                "BE_NN": f"{number[:2]}{month}{day}",
            }
            number = prefix.get(kind, "") + number[len(prefix.get(kind, "")) :]
        if n % 20 == 0:  # stdnum reads full-width digits as ASCII, Arabic-Indic ones not
            number = number[:-1] + rng.choice("\uff15\u0665")
        valid += is_valid(number)
        assert row.check(number) == is_valid(number), number
    assert valid > _MIN_VALID.get(kind, 50)


def test_date_checks_agree_with_datetime() -> None:
    rows = {row.kind: row for row in NATIONAL_IDS}
    rng = random.Random(9)

    def birth_date_by_hand(yymmdd: str) -> bool:
        try:
            datetime.date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:6]))
        except ValueError:
            return False
        return True

    valid = 0
    for _ in range(20000):
        # Months 0-13 and days 0-32: in and out of range, so some numbers are valid.
        yymmdd = f"{rng.randint(0, 99):02}{rng.randint(0, 13):02}{rng.randint(0, 32):02}"
        kr = yymmdd + "".join(rng.choice("0123456789") for _ in range(7))
        expected = kr[6] in "12345678" and birth_date_by_hand(kr[:6])
        assert rows["KR_RRN"].check(kr) == expected, kr
        valid += expected
    assert valid > 1000


@pytest.mark.parametrize("kind", sorted(_PRECHECKED))
def test_prechecked_validators_agree_with_stdnum_on_edge_values(kind: str) -> None:
    """All zeros, one digit repeated, palindromes and leading zeros: the values a checksum
    alone accepts and a validator may still refuse."""
    row = next(row for row in NATIONAL_IDS if row.kind == kind)
    is_valid = importlib.import_module(f"stdnum.{_PRECHECKED[kind]}").is_valid
    for length in sorted({sum(shape) for shape in row.shapes}):
        values = [digit * length for digit in "0123456789"]
        values += ["0" * (length - 1) + "1", "0" * (length - 2) + "18", "1" + "0" * (length - 1)]
        half = "3141592653589793"[: length // 2]
        values += [half + "7"[: length % 2] + half[::-1]]  # a palindrome
        values += [f"{n:0{length}d}" for n in range(0, 10**4, 7)]  # leading zeros, small
        for value in values:
            assert row.check(value) == is_valid(value), value
