"""Train the PERSON model shipped in signalvault/guardrails/data/pii_person_model.json.gz.

    .venv/bin/python training/train_person.py [--data /work/shared/eval] [--out PATH] [--check]
                                              [--set KEY=VALUE]

Reproducible: pure Python (no training library), a fixed seed and fixed data files give the
same weights byte for byte. Data, licences and the @handle convention: training/README.md.
`--check` retrains and fails if the result differs from the shipped file. `--set` overrides one
of SETTINGS, to train a variant elsewhere (`--out`) before choosing it (training/README.md).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import random
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "training"))
sys.path.insert(0, str(ROOT / "bench"))

import synthetic  # noqa: E402
from heldout import is_fresh9  # noqa: E402

from signalvault.guardrails.pii_names import NameLexicon, NameRules, load_lexicon  # noqa: E402
from signalvault.guardrails.pii_person import (  # noqa: E402
    MODEL_FILE,
    PersonFeatures,
    Token,
    rule_scores,
)

TRAIN_FILES = {
    # file: which records train (the rest are for tuning or measurement only)
    "pii-wnut17-emerging-entities-train.jsonl": None,
    "pii-broad-twitter-corpus.jsonl": "train",
}
_WORD = "w="  # the word itself (the other lexical features are its letter pieces)
LEXICAL = ("w=", "p=", "n=", "s3=", "p3=", "s4=", "s2=")  # kept when seen in min_count rows
_PIECES = ("s3=", "p3=", "s4=", "s2=")  # the word's letter pieces (hidden with it if "pieces")
SETTINGS = {"epochs": 12, "rate": 0.2, "l2": 2e-5, "min_count": 2, "seed": 1, "prune": 0.02,
            "dropout": 0.4, "pieces": 1, "name_shape": 1}  # fmt: skip
_NAME_SHAPE = {0: ("nl=", "nlg="), 1: ("nlg=",), 2: ("\0",)}  # feature prefixes left out
SYNTHETIC = 3000  # business-style sentences from training/synthetic.py
DEFAULT_OUT = ROOT / "signalvault" / "guardrails" / "data" / MODEL_FILE

Example = tuple[list[str], int]


def person_spans(rec: dict[str, Any]) -> list[tuple[int, int]]:
    """Gold PERSON spans, @handles left out: we follow WNUT-17, which does not label them."""
    text = rec["text"]
    return [
        (e["start"], e["end"])
        for e in rec["entities"]
        if e["type"] == "PERSON"
        and not e["value"].lstrip().startswith("@")
        and not text[max(0, e["start"] - 2) : e["start"]].strip().endswith("@")
    ]


def records(data: Path, file: str, split: str | None) -> Iterator[dict[str, Any]]:
    """The training records of one file: its `split`, less bench/heldout.py's fresh9 slice."""
    with (data / file).open(encoding="utf-8") as lines:
        for line in lines:
            rec = json.loads(line)
            if is_fresh9(rec["text"]):
                continue  # held out for measurement (bench/heldout.py, split `fresh9`)
            if split is None or rec.get("meta", {}).get("btc_recommended_split") == split:
                yield rec


def labelled_tokens(
    feats: PersonFeatures, rules: NameRules, rec: dict[str, Any]
) -> Iterator[tuple[Token, float, int, bool]]:
    """(token, rule score, label, lower-cased text) of every candidate token."""
    text = rec["text"]
    spans = person_spans(rec)
    lowered = not any(ch.isupper() for ch in text)
    tokens = feats.candidates(text, lowered)
    for token, rule in zip(tokens, rule_scores(rules.scan(text), tokens), strict=True):
        label = int(any(s < token.end and token.start < e for s, e in spans))
        yield token, rule, label, lowered


def own_examples(
    feats: PersonFeatures, rules: NameRules, recs: list[dict[str, Any]]
) -> list[Example]:
    """The word-only examples: what the word says by itself, for the neighbour features."""
    return [
        (feats.own(token), label)
        for rec in recs
        for token, _, label, _ in labelled_tokens(feats, rules, rec)
    ]


def examples(
    feats: PersonFeatures, rules: NameRules, recs: list[dict[str, Any]]
) -> Iterator[Example]:
    for rec in recs:
        for token, rule, label, lowered in labelled_tokens(feats, rules, rec):
            yield feats.own(token) + feats.context(rec["text"], token, lowered, rule), label


def own_model(
    lexicon: NameLexicon, rules: NameRules, recs: list[dict[str, Any]]
) -> dict[str, float]:
    rows = own_examples(PersonFeatures(lexicon), rules, recs)
    return {"own:" + f: w for f, w in train(rows, SETTINGS).items()}


def train(data: list[Example], settings: dict[str, Any]) -> dict[str, float]:
    """Logistic regression by AdaGrad with L2, in a fixed order per epoch."""
    counts = Counter(f for feats, _ in data for f in set(feats))
    keep = {f for f, n in counts.items() if n >= settings["min_count"] or not f.startswith(LEXICAL)}
    # The name-likeness of the word (pii_name_shape.py): none at 0, "nl=" at 1, "nlg=" too at 2.
    keep -= {f for f in keep if f.startswith(_NAME_SHAPE[settings.get("name_shape", 0)])}
    rows = [([f for f in feats if f in keep], y) for feats, y in data]
    weights: dict[str, float] = {}
    squares: dict[str, float] = {}
    order = list(range(len(rows)))
    rng = random.Random(settings["seed"])
    dropout = settings.get("dropout", 0.0)
    for _ in range(settings["epochs"]):
        rng.shuffle(order)
        for index in order:
            feats, y = rows[index]
            if dropout:
                # The word itself is hidden now and then, so the rest (letter pieces, shape,
                # gazetteers, context) must carry names the training text never showed.
                if settings.get("pieces"):
                    # ... with its letter pieces, which spell most of it out: then only shape,
                    # gazetteers, context and the rules are left to carry the name.
                    if rng.random() < dropout:
                        feats = [f for f in feats if not f.startswith((_WORD, *_PIECES))]
                else:
                    feats = [f for f in feats if not f.startswith(_WORD) or rng.random() >= dropout]
            z = sum(weights.get(f, 0.0) for f in feats)
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
            grad = p - y
            for f in feats:
                w = weights.get(f, 0.0)
                g = grad + settings["l2"] * w
                squares[f] = squares.get(f, 0.0) + g * g
                weights[f] = w - settings["rate"] * g / math.sqrt(squares[f])
    return {f: round(w, 3) for f, w in sorted(weights.items()) if abs(w) >= settings["prune"]}


def faker_version() -> str:
    from importlib.metadata import version

    return version("faker")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def corpus_records(data: Path) -> list[dict[str, Any]]:
    """The records of the two corpora that train (synthetic ones not included)."""
    recs: list[dict[str, Any]] = []
    for file, split in TRAIN_FILES.items():
        recs.extend(records(data, file, split))
    return recs


def fit(
    lexicon: NameLexicon, rules: NameRules, recs: list[dict[str, Any]]
) -> tuple[dict[str, float], list[Example]]:
    """(weights of both models, the main model's training rows) from `recs`."""
    # The neighbour features read a word-only model. Each half of the records reads the one
    # trained on the other half (cross-fitting: a model scoring its own training words would
    # look surer than it is on new text); the shipped one is trained on all records.
    halves = [recs[0::2], recs[1::2]]
    train_rows: list[Example] = []
    for half, other in ((0, 1), (1, 0)):
        feats = PersonFeatures(lexicon, own_model(lexicon, rules, halves[other]))
        train_rows.extend(examples(feats, rules, halves[half]))
    return {**train(train_rows, SETTINGS), **own_model(lexicon, rules, recs)}, train_rows


def build(data: Path) -> dict[str, Any]:
    lexicon = load_lexicon()
    rules = NameRules(lexicon)
    recs = [*corpus_records(data), *synthetic.records(SYNTHETIC)]
    weights, train_rows = fit(lexicon, rules, recs)
    meta = {
        "what": "PERSON token classifier for signalvault/guardrails/pii_person.py",
        "trained_by": "training/train_person.py",
        "settings": SETTINGS,
        "examples": len(train_rows),
        "held_out": "records bench/heldout.is_fresh9 selects (split `fresh9`)",
        "positives": sum(y for _, y in train_rows),
        "data": {
            **{
                file: {"records": split or "all", "sha256": digest(data / file)}
                for file, split in TRAIN_FILES.items()
            },
            "training/synthetic.py": {"records": SYNTHETIC, "faker": faker_version()},
        },
        "licences": {
            "pii-wnut17-emerging-entities-train.jsonl": "CC-BY-4.0, Derczynski et al., "
            "'Results of the WNUT2017 Shared Task on Novel and Emerging Entity Recognition' "
            "(github.com/leondz/emerging_entities_17)",
            "pii-broad-twitter-corpus.jsonl": "CC-BY-4.0, Derczynski, Bontcheva and Roberts, "
            "'Broad Twitter Corpus: A Diverse Named Entity Recognition Resource', COLING 2016 "
            "(github.com/GateNLP/broad_twitter_corpus)",
        },
        "handles": "@handles are not PERSON (WNUT-17 convention); BTC handle spans are dropped",
    }
    return {"meta": meta, "weights": weights}


def write(model: dict[str, Any], out: Path) -> None:
    payload = json.dumps(model, sort_keys=True, separators=(",", ":")).encode()
    # mtime=0 and no file name: the same model gives the same bytes.
    with out.open("wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(payload)


def write_or_check(model: dict[str, Any], out: Path, check: bool) -> bool:
    """Write `model` to `out`, or with `check` compare what it would write with `out`, byte
    for byte (nothing written); True unless the check found a difference."""
    if not check:
        write(model, out)
        return True
    tmp = out.with_suffix(".check")
    write(model, tmp)
    same = tmp.read_bytes() == out.read_bytes()
    tmp.unlink()
    print("identical" if same else f"DIFFERENT from the shipped {out.name}")
    return same


def fix_hash_seed() -> None:
    """Run this script again with PYTHONHASHSEED=0 unless it is so: Faker draws some values by
    iterating sets, so string hashing must not vary between runs (training, CV, error analysis)."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(
            sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"}
        )


def main(argv: list[str] | None = None) -> int:
    fix_hash_seed()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/eval"))
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="fail if retraining changes the file")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in SETTINGS:
            ap.error(f"no setting {key!r}; known: {', '.join(SETTINGS)}")
        SETTINGS[key] = type(SETTINGS[key])(value)
    model = build(args.data)
    if not write_or_check(model, args.out, args.check):
        return 1
    if not args.check:
        print(
            f"{args.out}: {len(model['weights'])} weights from {model['meta']['examples']} examples"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
