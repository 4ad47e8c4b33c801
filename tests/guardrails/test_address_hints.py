"""The address rules' cheap hints skip work only where the full patterns would find nothing."""

from __future__ import annotations

import itertools
import re
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signalvault.guardrails import pii_address
from signalvault.guardrails.pii_address import AddressRules

DOTLESS_I, DOTTED_I, LONG_S = "\u0131", "\u0130", "\u017f"  # caseless i, i and s in `re`
# Every code point except surrogates, in one string: `re` scans it in C for each letter.
_ALL_CHARS = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)


def _caseless_spellings(word: str) -> list[str]:
    """Every spelling of `word` that `re.IGNORECASE` matches, one character per letter."""
    choices = [re.findall(re.escape(letter), _ALL_CHARS, re.IGNORECASE) for letter in word]
    return ["".join(chars) for chars in itertools.product(*choices)]


def test_zip_hint_matches_every_caseless_spelling_of_the_cue_words() -> None:
    spellings = _caseless_spellings("zip") + _caseless_spellings("post")
    assert f"Z{DOTTED_I}P" in spellings and f"po{LONG_S}t" in spellings  # not only ASCII case
    assert all(pii_address._ZIP_HINT.search(s) for s in spellings)


def test_zip_cue_with_non_ascii_case_is_still_found() -> None:
    rules = AddressRules()
    for text in (
        f"my Z{DOTTED_I}P code is 86786",
        f"po{LONG_S}tal code: 12345",
        f"z{DOTLESS_I}p 1011",
    ):
        assert [(k, text[s:e]) for k, s, e, _ in rules.scan(text)][-1:] == [
            ("ADDRESS", text.split()[-1])
        ], text


_PIECES = st.sampled_from(
    ["zip", "ZIP", f"Z{DOTLESS_I}p", "post", f"Po{LONG_S}T", "postal", "code", "Code", " is ",
     ": ", "\n", " ", "86786", "SW1A 1AA", "394 13", "A1", "12 Main St", "Box 5", "x", DOTLESS_I,
     DOTTED_I, LONG_S, "-", "9", "gzip", "postgres", "p", "z"]
)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(st.lists(_PIECES, max_size=14).map("".join))
def test_zip_values_are_exactly_the_zip_cue_matches(text: str) -> None:
    expected = [m.span(1) for m in pii_address._ZIP_CUE.finditer(text)]
    assert [m.span(1) for m in pii_address._zip_values(text, text.lower())] == expected


@settings(max_examples=600, deadline=None)
@given(st.lists(_PIECES.filter(str.isascii), max_size=14).map("".join))
def test_zip_values_on_ascii_text_are_exactly_the_zip_cue_matches(text: str) -> None:
    expected = [m.span(1) for m in pii_address._ZIP_CUE.finditer(text)]
    assert [m.span(1) for m in pii_address._zip_values(text, text.lower())] == expected


def test_the_number_lookbehind_tests_isalnum() -> None:
    word_not_underscore = re.compile(r"[^\W_]")
    assert all((word_not_underscore.match(c) is not None) == c.isalnum() for c in _ALL_CHARS)


_OLD_DIGITS = re.compile(r"\d{1,5}[a-zA-Z]?(?![\w])")


def _old_numbers(text: str) -> list[tuple[int, int]]:
    """The numbers the anchor loop used to keep: `_OLD_DIGITS` minus those glued on the left."""
    return [
        m.span()
        for m in _OLD_DIGITS.finditer(text)
        if not m.start() or not (text[m.start() - 1].isalnum() or text[m.start() - 1] in ".,:-/$€£")
    ]


@settings(max_examples=800, deadline=None)
@given(st.text(alphabet="0123456789 aZ_.,:-/$€£\n\u0663\u00b2x", max_size=40))
def test_numbers_glued_on_the_left_are_dropped_by_the_pattern_alone(text: str) -> None:
    assert [m.span() for m in pii_address._DIGITS.finditer(text)] == _old_numbers(text)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789 aZ_.,:-/$\n\tx", max_size=40))
def test_the_ascii_number_pattern_agrees_on_ascii_text(text: str) -> None:
    ascii_spans = [m.span() for m in pii_address._DIGITS_ASCII.finditer(text)]
    assert ascii_spans == [m.span() for m in pii_address._DIGITS.finditer(text)]


_BEFORE_PIECES = st.sampled_from(
    ["Apt", "apt.", "APARTMENT", "Suite", " #", "Ste", "unit", "Flat", "room", "Rm", "Floor",
     "fl", "P.O. Box", "PO", "box", "PSC", "CMR", "USNS", "USS", "USNV", "APO", "AE", "fpo",
     "aa", "DPO AP", "card", "Main St", " ", ".", ",", "x", "\u212a", "\u0130", "9"]
)  # fmt: skip


@settings(max_examples=800, deadline=None)
@given(st.lists(_BEFORE_PIECES, max_size=8).map("".join))
def test_the_unit_endings_test_only_skips_text_without_a_unit(before: str) -> None:
    expected = pii_address._unit_start(before, endings=("",))  # every text passes: the old path
    assert pii_address._unit_start(before) == expected


@pytest.mark.parametrize(
    "word", sorted(pii_address._UNIT_WORDS | pii_address._MILITARY | {"p.o. box", "PO Box"})
)
def test_every_unit_word_passes_the_unit_endings_test(word: str) -> None:
    for before in (f"ship to {word} ", f"Ship to {word.upper()} #", f"{word.title()}. "):
        expected = pii_address._unit_start(before, endings=("",))
        assert expected >= 0
        assert pii_address._unit_start(before) == expected
