"""PERSON model features that read the whole text, not a window around the token (the fifth
round's variants, training/README.md): document-level consistency (`doc`: how the same word is
written and cued elsewhere in the text) and a second pass (`stack`: a second logistic regression
that also reads the first pass's probabilities of the joined neighbours and of the same word
elsewhere). A model file carries them only when trained with them (train_person.py settings
`doc`, `stack`); without them the model never reaches this module.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pii_person imports this module; its names are imported where used
    from signalvault.guardrails.pii_person import PersonFeatures, PersonModel, Token

SECOND = "m2:"  # weight-name prefix of the second pass's model
DOC = ("dl=", "dc=", "dr=", "d=none")  # feature prefixes of the document-level features
_WORD = re.compile(r"[^\W\d_]+")


def _rule_step(score: float) -> str:
    return "none" if score < 0 else "lo" if score < 0.5 else "mid" if score < 0.95 else "hi"


def doc_features(
    features: PersonFeatures,
    text: str,
    tokens: Sequence[Token],
    rules_at: Sequence[float],
    lowered_text: bool,
) -> list[list[str]]:
    """For each token, what the other occurrences of its word in the text say (see `doc`)."""
    from signalvault.guardrails.pii_person import _sentence_initial

    lower_counts: Counter[str] = Counter()
    if not lowered_text:  # in lower-cased text every word is lower case: no evidence
        lower_counts.update(w for w in _WORD.findall(text) if w.islower())
    by_word: dict[str, list[int]] = {}
    for i, token in enumerate(tokens):
        by_word.setdefault(token.lower, []).append(i)
    mid_caps = [
        token.word[:1].isupper() and not _sentence_initial(text, token.start) for token in tokens
    ]
    out = []
    for i, token in enumerate(tokens):
        _, shape, _ = features.word(token.word)
        others = [j for j in by_word[token.lower] if j != i]
        lower = lower_counts[token.lower] - (token.word.islower() and not lowered_text)
        feats = []
        if lower > 0:
            feats.append("dl=" + shape)
        if any(mid_caps[j] for j in others):
            feats.append("dc=" + shape)
        if others:
            feats.append("dr=" + _rule_step(max(rules_at[j] for j in others)))
        if not feats:
            feats.append("d=none|" + shape)
        out.append(feats)
    return out


def _step(p: float) -> str:
    return (
        "0"
        if p < 0.1
        else "1"
        if p < 0.3
        else "2"
        if p < 0.5
        else "3"
        if p < 0.7
        else ("4" if p < 0.9 else "5")
    )


def stack_features(
    features: PersonFeatures, text: str, tokens: Sequence[Token], first: Sequence[float]
) -> list[list[str]]:
    """For each token, the first pass's probability of the candidates joined to it (before,
    after) and the best one of its word elsewhere in the text, in six steps."""
    from signalvault.guardrails.pii_person import _JOINS

    best: dict[str, list[tuple[int, float]]] = {}
    for i, token in enumerate(tokens):
        best.setdefault(token.lower, []).append((i, first[i]))
    out = []
    last = len(tokens) - 1
    for i, token in enumerate(tokens):
        _, shape, _ = features.word(token.word)
        joined_before = i > 0 and text[tokens[i - 1].end : token.start] in _JOINS
        joined_after = i < last and text[token.end : tokens[i + 1].start] in _JOINS
        elsewhere = [p for j, p in best[token.lower] if j != i]
        out.append(
            [
                f"sp={_step(first[i - 1]) if joined_before else 'none'}|{shape}",
                f"sn={_step(first[i + 1]) if joined_after else 'none'}|{shape}",
                f"sd={_step(max(elsewhere)) if elsewhere else 'none'}",
            ]
        )
    return out


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


class WholeText:
    """The token scores of a model trained with `doc` and/or `stack` (see the module doc)."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.doc = any(k.startswith(DOC) for k in weights)
        self.second = {k[len(SECOND) :]: w for k, w in weights.items() if k.startswith(SECOND)}
        self._own2: dict[str, float] = {}

    @staticmethod
    def wanted(weights: Mapping[str, float]) -> bool:
        return any(k.startswith((SECOND, *DOC)) for k in weights)

    def token_scores(
        self,
        model: PersonModel,
        text: str,
        tokens: Sequence[Token],
        rules_at: Sequence[float],
        lowered_text: bool,
    ) -> list[tuple[Token, float]]:
        """PersonModel.token_scores for such a model (its caches and gate are used as there)."""
        from signalvault.guardrails.pii_person import OWN_GATE

        features, own_scores, get = model.features, model._own, model._weights.get
        docs = doc_features(features, text, tokens, rules_at, lowered_text) if self.doc else None
        first: list[float] = []
        contexts: list[list[str] | None] = []
        for i, (token, rule) in enumerate(zip(tokens, rules_at, strict=True)):
            z = own_scores.get(token.word)
            if z is None:
                z = own_scores[token.word] = sum(get(f, 0.0) for f in features.own(token))
            if z < OWN_GATE and rule < 0.5:
                first.append(0.0)  # as PersonModel: the word alone rules itself out
                contexts.append(None)
                continue
            context = features.context(text, token, lowered_text, rule)
            if docs is not None:
                context += docs[i]
            contexts.append(context)
            first.append(_sigmoid(z + sum(get(f, 0.0) for f in context)))
        if not self.second:
            return list(zip(tokens, first, strict=True))
        get2 = self.second.get
        stacks = stack_features(features, text, tokens, first)
        out = []
        for token, read, stack in zip(tokens, contexts, stacks, strict=True):
            if read is None:
                out.append((token, 0.0))
                continue
            z2 = self._own2.get(token.word)
            if z2 is None:
                if len(self._own2) > 50_000:
                    self._own2.clear()  # bounded: a long-running gateway sees unbounded words
                z2 = self._own2[token.word] = sum(get2(f, 0.0) for f in features.own(token))
            z2 += sum(get2(f, 0.0) for f in read) + sum(get2(f, 0.0) for f in stack)
            out.append((token, _sigmoid(z2)))
        return out
