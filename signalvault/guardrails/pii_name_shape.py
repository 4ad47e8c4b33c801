"""How much a word looks like a name by its letters alone: a logistic regression over the
character 2- to 4-grams of the lower-cased word with its boundaries ("^ste", "eve$"), learnt
from the name lists the package ships or depends on (first names and surnames of many
languages) against everyday English words. Weights trained by training/train_name_shape.py
and shipped in data/; pure Python, offline.

The PERSON model reads the probability in five steps as a feature of the word's own
(`nl=<step>`), so a name no labelled text showed still says what it is.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
from importlib import resources
from itertools import repeat
from pathlib import Path

MODEL_FILE = "pii_name_shape.json.gz"
GRAMS = (2, 3, 4)
STEPS = 5  # probability steps of the feature: 0-0.2 ... 0.8-1
FEATURE_CACHE = 4_096  # words whose features are kept (see NameShape.features)
_ZEROS = repeat(0.0)  # the default of every weight lookup


def grams(lower: str) -> list[str]:
    """The character n-grams of a lower-cased word, its start and end marked."""
    word = "^" + lower + "$"
    size = len(word)
    return [word[i : i + n] for n in GRAMS for i in range(size - n + 1)]


class NameShape:
    """Name-likeness of lower-cased words; cached per word (bounded)."""

    def __init__(self, weights: dict[str, float], bias: float) -> None:
        self._weights = weights
        self._bias = bias
        self._features: dict[tuple[str, str, str], tuple[str, str, str]] = {}
        # The features by (step, shape, gazetteer classes), shared by every word that has them,
        # so the per-word cache holds no strings of its own; bounded by its keys (5 steps, 4
        # shapes, the combinations of gazetteer classes words have: ~150 in all).
        self._by_step: dict[tuple[int, str, str], tuple[str, str, str]] = {}

    def probability(self, lower: str) -> float:
        # The weights summed in C (map over the grams), in the order of grams(): same float.
        z = sum(map(self._weights.get, grams(lower), _ZEROS), self._bias)
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def step(self, lower: str) -> int:
        return min(STEPS - 1, int(self.probability(lower) * STEPS))

    def features(self, lower: str, shape: str, gaz: str) -> tuple[str, str, str]:
        """The PERSON model's features of the word: its step, with its shape, with its
        gazetteer classes."""
        key = (lower, shape, gaz)
        known = self._features.get(key)
        if known is None:
            step = self.step(lower)
            known = self._by_step.get((step, shape, gaz))
            if known is None:
                text = str(step)
                known = ("nl=" + text, "nl=" + text + "|" + shape, "nlg=" + text + "|" + gaz)
                self._by_step[step, shape, gaz] = known
            # Bounded small: the PERSON model keeps each word's own score itself, so this only
            # spares the second look at a new word (as a candidate and as a neighbour). An entry
            # holds its key and a shared tuple (~100 bytes besides the word, which the PERSON
            # features' own cache holds too).
            if len(self._features) >= FEATURE_CACHE:
                self._features.clear()
            self._features[key] = known
        return known


def load(path: Path | None = None) -> tuple[NameShape, dict[str, object]]:
    """The shipped scorer (or the one in `path`, in training) and its provenance."""
    source = path or resources.files("signalvault.guardrails.data").joinpath(MODEL_FILE)
    # Equal weights share one float object, made as the file is parsed: the file rounds them to
    # 3 decimals, so its 45k weights hold ~2,800 values, and a float apiece kept ~1 MiB more
    # (sharing them after parsing freed the copies too late to give the memory back).
    floats: dict[str, float] = {}

    def shared_float(text: str) -> float:
        value = floats.get(text)
        if value is None:
            value = floats[text] = float(text)
        return value

    with source.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as handle:
        model = json.load(handle, parse_float=shared_float)
    weights = {k: float(v) for k, v in model["weights"].items()}
    return NameShape(weights, float(model["bias"])), model["meta"]


@functools.cache  # one per process, shared by every engine
def shipped() -> NameShape:
    return load()[0]
