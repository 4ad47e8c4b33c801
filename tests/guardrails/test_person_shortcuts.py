"""The PERSON detector's shortcuts give what the slower general path gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from signalvault.guardrails import pii_names
from signalvault.guardrails.pii_names import load_lexicon

# Pieces that meet at every edge the shortcuts read: letters of both cases and none, joins
# ("O'Neil", "Mary-Jane"), digits, "_" and "@" (glued tokens), edge punctuation, Unicode
# whitespace and punctuation, and names the lexicon knows in lower case.
_PIECES = st.sampled_from(
    ["Anna", "anna", "ANNA", "de", "la", "O", "o", "'", "\u2019", "-", "'s", " ", "  ", "\n",
     "\t", "\u00a0", "\u3000", ".", ",", "(", ")", '"', "\u201c", "\u201d", "*", "3", "_", "@",
     "McDonald", "iPhone", "x", "X", "\u00e9", "\u00c9", "\u0130", "Stra\u00dfe", "mary", "obama",
     "kate", "van", "von", "trump", ":", "!"]
)  # fmt: skip


def _slow_capitalised(text: str) -> list[tuple[int, int]]:
    spans = [m.span() for m in pii_names._CAPITALISED.finditer(text)]
    return [(s, e) for s, e in spans if not (s and pii_names._follows_token(text, s))]


@settings(max_examples=1500, deadline=None)
@given(st.lists(_PIECES, max_size=16).map("".join))
def test_capitalised_words_are_those_of_the_unicode_pattern(text: str) -> None:
    assert pii_names._capitalised(text) == _slow_capitalised(text)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_PIECES, max_size=16).map("".join))
def test_lower_case_names_are_those_of_the_whole_word_set(text: str) -> None:
    lexicon = load_lexicon()
    expected = lexicon.lower_ok.intersection(pii_names._words(text))
    assert pii_names._lower_ok_names(text, lexicon) == expected


def test_lower_case_names_survive_lone_surrogates() -> None:
    lexicon = load_lexicon()
    assert pii_names._lower_ok_names("ask \ud800mary\udfff or kate", lexicon) == {"kate"}


_WINDOW_PIECES = st.sampled_from(
    ["my", "Name", " ", "is", "'", "'s", "o'brien", "I'm", "--", ",", "\n", "3", "thank you",
     "\u00e9", "call me", "Dr.", "''", "a'b'c"]
)  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(st.lists(_WINDOW_PIECES, max_size=12).map("".join))
def test_last_cue_words_are_the_last_two_cue_word_matches(before: str) -> None:
    expected = pii_names._CUE_WORD.findall(before.lower())[-2:]
    assert pii_names._last_cue_words(before) == expected
