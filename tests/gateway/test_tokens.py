"""Token counts for streams without usage: the cl100k encoding, held without its Python ranks."""

from __future__ import annotations

import pickle

import pytest

from signalvault.gateway.tokens import TokenCounter


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("hello world", 2),
        ("Dear Ms. Okonkwo, your invoice #48213 is überfällig — 支払い期限", 26),
        ("def f(x):\n    return x**2  # 🙂", 12),
        ("", 0),
    ],
)
def test_counts_cl100k_tokens(text: str, tokens: int) -> None:
    assert TokenCounter().count(text) == tokens


def test_the_encoding_keeps_no_python_rank_table_and_still_pickles() -> None:
    """The 100k-entry dict tiktoken keeps beside its Rust encoder is freed (~15 MiB of a
    gateway's memory); the encoding still counts, and pickles by its registered name."""
    counter = TokenCounter()
    counter.warm()
    encoding = counter._encoding(None)
    assert encoding._mergeable_ranks == {}
    copy = pickle.loads(pickle.dumps(encoding))  # noqa: S301 (our own object, round trip)
    assert copy.encode("hello world") == encoding.encode("hello world")
