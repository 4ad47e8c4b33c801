"""The chain of the PERSON model's CRF setting (`crf` 1, training/README.md, seventh round).

A linear-chain CRF with two labels, "not" (0) and "name" (1), over each run of candidate tokens
that PersonModel.spans would join into one span ("Dikembe Mutombo", "Mary-Jane", "J. Smith").
A token's unary score is what the logistic model computes (the sum of its feature weights) and
belongs to "name"; four transition weights ("crf:ab": a token labelled a followed in its run by
one labelled b) tie the labels of joined neighbours. A token's score is its marginal probability
of "name" given the whole run; a token alone in its run gets the logistic probability, which is
what the chain gives for one token. Pure Python; training/train_person.py trains it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

TRANSITIONS = ("crf:00", "crf:01", "crf:10", "crf:11")
JOINS = frozenset([" ", "-", ". "])  # between the tokens of one name: "Mary-Jane", "J. Smith"
Transitions = tuple[float, float, float, float]
Pair = tuple[float, float, float, float]  # probabilities of (0, 0), (0, 1), (1, 0), (1, 1)


class _Spanned(Protocol):
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


T = TypeVar("T", bound=_Spanned)


def transitions(weights: Mapping[str, float]) -> Transitions | None:
    """The model's transition weights, or None for a logistic model (no "crf:" weight)."""
    if not any(key in weights for key in TRANSITIONS):
        return None
    t00, t01, t10, t11 = (weights.get(key, 0.0) for key in TRANSITIONS)
    return t00, t01, t10, t11


def runs(text: str, tokens: Sequence[_Spanned]) -> list[tuple[int, int]]:
    """(first, past-last) indices of each run of joined tokens, in order."""
    out = []
    begin = 0
    for at in range(1, len(tokens)):
        if text[tokens[at - 1].end : tokens[at].start] not in JOINS:
            out.append((begin, at))
            begin = at
    if tokens:
        out.append((begin, len(tokens)))
    return out


def _lse(a: float, b: float) -> float:
    top = a if a > b else b
    return top + math.log(math.exp(a - top) + math.exp(b - top))


def forward_backward(
    unary: Sequence[float], trans: Transitions, pairs: bool = False
) -> tuple[list[float], list[Pair]]:
    """(P(name) of each token, P of each label pair of neighbours if `pairs`) for one run."""
    t00, t01, t10, t11 = trans
    u = [max(-30.0, min(30.0, z)) for z in unary]
    n = len(u)
    f0, f1 = [0.0] * n, [0.0] * n  # forward log scores, ending in label 0 / 1 at t
    f1[0] = u[0]
    for t in range(1, n):
        f0[t] = _lse(f0[t - 1] + t00, f1[t - 1] + t10)
        f1[t] = _lse(f0[t - 1] + t01, f1[t - 1] + t11) + u[t]
    b0, b1 = [0.0] * n, [0.0] * n  # backward log scores of what follows label 0 / 1 at t
    for t in range(n - 2, -1, -1):
        b0[t] = _lse(t00 + b0[t + 1], t01 + u[t + 1] + b1[t + 1])
        b1[t] = _lse(t10 + b0[t + 1], t11 + u[t + 1] + b1[t + 1])
    log_z = _lse(f0[-1], f1[-1])
    probs = [math.exp(f1[t] + b1[t] - log_z) for t in range(n)]
    if not pairs:
        return probs, []
    out = []
    for t in range(1, n):
        to0, to1 = b0[t] - log_z, u[t] + b1[t] - log_z
        out.append(
            (
                math.exp(f0[t - 1] + t00 + to0),
                math.exp(f0[t - 1] + t01 + to1),
                math.exp(f1[t - 1] + t10 + to0),
                math.exp(f1[t - 1] + t11 + to1),
            )
        )
    return probs, out


def chain_scores(
    text: str, scored: list[tuple[T, float]], unary: Sequence[float], trans: Transitions
) -> list[tuple[T, float]]:
    """`scored` (token, logistic probability) with the chain's marginals in runs of two or more."""
    out = scored
    for begin, end in runs(text, [token for token, _ in scored]):
        if end - begin > 1:
            if out is scored:
                out = list(scored)
            probs, _ = forward_backward(unary[begin:end], trans)
            for at, p in zip(range(begin, end), probs, strict=True):
                out[at] = (out[at][0], p)
    return out
