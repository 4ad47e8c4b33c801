"""The PERSON detector's shortcuts give what the slower general path gives."""

from __future__ import annotations

import functools

from hypothesis import given, settings
from hypothesis import strategies as st

from signalvault.guardrails import pii_names
from signalvault.guardrails.pii_names import load_lexicon
from signalvault.guardrails.pii_person import (
    PersonFeatures,
    Token,
    _after,
    _before,
    load_weights,
    rule_scores,
)

# Pieces that meet at every edge the shortcuts read: letters of both cases and none, joins
# ("O'Neil", "Mary-Jane"), digits, "_" and "@" (glued tokens), edge punctuation, Unicode
# whitespace and punctuation, and names the lexicon knows in lower case.
_PIECES = st.sampled_from(
    ["Anna", "anna", "ANNA", "de", "la", "O", "o", "'", "\u2019", "-", "'s", " ", "  ", "\n",
     "\t", "\u00a0", "\u3000", ".", ",", "(", ")", '"', "\u201c", "\u201d", "*", "3", "_", "@",
     "McDonald", "iPhone", "x", "X", "\u00e9", "\u00c9", "\u0130", "Stra\u00dfe", "mary", "obama",
     "kate", "van", "von", "trump", ":", "!", "\x1c", "\u2028", "1st", "Thank", "st", "de"]
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
     "\u00e9", "call me", "Dr.", "''", "a'b'c", "\u212a", "MR"]
)  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(st.lists(_WINDOW_PIECES, max_size=12).map("".join))
def test_last_cue_words_are_the_last_two_cue_word_matches(before: str) -> None:
    expected = pii_names._CUE_WORD.findall(before.lower())[-2:]
    assert pii_names._last_cue_words(before) == expected


def _slow_name_tokens(text: str, lowered_text: bool) -> list[tuple[int, int, str]]:
    """name_tokens as it was before its shortcuts (main at b77e4fd)."""
    lexicon = load_lexicon()
    spans = [] if lowered_text else _slow_capitalised(text)
    words = pii_names._words(text)
    known = lexicon.lowered_names(words) if lowered_text else lexicon.lower_ok & words
    for word in known:
        at = text.find(word)
        while at != -1:
            end = at + len(word)
            if not (at and pii_names._is_token_char(text[at - 1])) and not (
                end < len(text) and pii_names._is_token_char(text[end])
            ):
                spans.append((at, end))
            at = text.find(word, end)
    out = []
    for start, end in sorted(spans):
        if not pii_names.glued(text, start, end):
            word = text[start:end]
            if word[-2:] in ("'s", "\u2019s"):
                word, end = word[:-2], end - 2
            out.append((start, end, word))
    return out


@settings(max_examples=2000, deadline=None)
@given(st.lists(_PIECES, max_size=16).map("".join), st.booleans())
def test_name_tokens_are_those_of_the_plain_path(text: str, lowered_text: bool) -> None:
    expected = _slow_name_tokens(text, lowered_text)
    assert pii_names.name_tokens(text, load_lexicon(), lowered_text) == expected


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.integers(0, 60), max_size=24, unique=True).map(sorted),
    st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8), st.floats(0, 1)), max_size=6),
)
def test_rule_scores_are_the_best_rule_span_holding_each_token(
    cuts: list[int], spans: list[tuple[int, int, float]]
) -> None:
    # Disjoint tokens in text order (as name_tokens gives them) and any rule spans at all.
    tokens = [Token(a, b, "w", "w") for a, b in zip(cuts[::2], cuts[1::2], strict=False)]
    rules = sorted(("PERSON", start, start + width, score) for start, width, score in spans)
    expected = [
        max([score for _, s, e, score in rules if s <= t.start and t.end <= e], default=-1.0)
        for t in tokens
    ]
    assert rule_scores(rules, tokens) == expected


def _neighbour_features(features: PersonFeatures, text: str, token: Token) -> list[str]:
    """The p=/psh=/pg=/pown= and n=/nsh=/ng=/nown= features as built before their cache."""
    _, shape, gaz = features.word(token.word)
    before, after = _before(text, token.start), _after(text, token.end)
    out = []
    if before is None or "\n" in text[before[1] : token.start]:
        out.append("p=<s>")
    else:
        lower, w_shape, w_gaz = features.word(before[2])
        own = features.neighbour(before[2])
        out += [f"p={lower}", f"psh={w_shape}|{shape}", f"pg={w_gaz}|{gaz}", f"pown={own}|{shape}"]
    if after is None or "\n" in text[token.end : after[0]]:
        out.append("n=</s>")
    else:
        lower, w_shape, w_gaz = features.word(after[2])
        own = features.neighbour(after[2])
        out += [f"n={lower}", f"nsh={shape}|{w_shape}", f"ng={gaz}|{w_gaz}", f"nown={shape}|{own}"]
    return out


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=16).map("".join))
def test_context_features_are_the_same_with_the_neighbour_cache_cold_or_warm(text: str) -> None:
    lexicon = load_lexicon()
    warm = PersonFeatures(lexicon, _weights())
    for token in warm.candidates(text, False):
        cold = PersonFeatures(lexicon, warm._own_weights)
        first = cold.context(text, token, False, 0.5)
        assert (
            first == cold.context(text, token, False, 0.5) == warm.context(text, token, False, 0.5)
        )
        expected = _neighbour_features(cold, text, token)
        assert [f for f in first if f.split("=")[0] in _SIDE_KINDS] == expected


@functools.cache
def _weights() -> dict[str, float]:
    return load_weights()[0]


_SIDE_KINDS = {"p", "psh", "pg", "pown", "n", "nsh", "ng", "nown"}
