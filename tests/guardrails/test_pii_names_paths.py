"""The name scanner's fast path (walking only tokens that do not start with a-z) finds exactly
what walking every token finds: on the labelled data and on generated text."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signalvault.guardrails.pii_names import _TOKEN, NameRules
from tests.shared_data import eval_texts


@functools.cache
def rules() -> NameRules:
    return NameRules()


def every_token(text: str) -> object:
    lowered = text.islower() or not any(ch.isupper() for ch in text)
    names = rules()
    lower_ok = names._lower_ok_lowered if lowered else names._lower_ok
    return names._scan(text, _TOKEN, lowered, lower_ok)


@pytest.mark.parametrize(
    "name",
    [
        "pii-presidio-research-synth-v2.jsonl",
        "pii-wnut17-emerging-entities-dev.jsonl",
        "injection-deepset-prompt-injections.jsonl",
    ],
)
def test_fast_path_equals_walking_every_token_on_labelled_data(name: str) -> None:
    texts = eval_texts(name)
    fast_path_used = 0
    for text in texts:
        assert rules().scan(text) == every_token(text), text
        fast_path_used += rules()._lower_ok.isdisjoint(_TOKEN.findall(text))
    assert fast_path_used > len(texts) // 2


WORDS = st.sampled_from(
    ["Maria", "maria", "john", "Smith", "van", "der", "O'Neil", "o'Neil", "Jean-Luc", "x-Men",
     "the", "The", "said", "Dr", "Émile", "émile", "ǅemal", "Ⅻ", "ß", "İstanbul", "a3f", "A",
     "name", "is", "Thanks", "Ask", "'", "-", "_", "42"]
)  # fmt: skip
GAPS = st.sampled_from([" ", " ", "-", ". ", ", ", "'", "\u2019", "", "\n", "_", "7"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(WORDS, GAPS), max_size=14))
def test_fast_path_equals_walking_every_token_on_generated_text(
    parts: list[tuple[str, str]],
) -> None:
    text = "".join(word + gap for word, gap in parts)
    assert rules().scan(text) == every_token(text)
