"""Cross-validate the PERSON model on its own training data: how to choose settings without
looking at any held-out set.

    .venv/bin/python training/cv_person.py [--data /work/shared/eval] [--folds 4] [--json]
                                           [--by-corpus | --novel] [--set KEY=VALUE]
    .venv/bin/python training/cv_person.py --rank BY_CORPUS.json POOLED.json [--floor 0.78]
    .venv/bin/python training/cv_person.py --select NOVEL.json POOLED.json
                                           [--floor-novel 0.75] [--floor 0.78]

The records training/train_person.py trains on (the two corpora, less bench/heldout.py's
`fresh9` slice) are cut into folds by a hash of the text (repeats land in the same fold). For
each fold, both models are trained as train_person.py trains them, on the other folds and the
synthetic sentences, and the whole PII detector (rules, model, addresses, the engine's 0.5
threshold) scans the fold. PERSON precision and recall (any character overlap, as score.py
counts; @handles unlabelled) are pooled over folds, per corpus, for several model thresholds.

`--novel`: novel-name folds, after WNUT-17's design (its dev and test names are mostly names
its training split never shows). A record's name tokens are the lower-cased word pieces (\w+)
of its gold PERSON spans. A record with names goes to the fold given by a hash of its most
frequent name token (so the records of a common name, "trump", land together); one without, by
a hash of its text. Each fold is scanned by models trained on the other folds *less every record
that has a name token of the scanned fold*: no name of the scanned fold was ever a PERSON in its
training records, and every span of the fold is scored (no span is left out of the counts).
Keying by the rarest token instead drops twice as many training records (9% of them, half of
those with names, against 4%). The synthetic sentences train in every fold, as they do for the
shipped model; their Faker names may include a scanned fold's names.

`--rank` reads the --json output of a --by-corpus run and of a pooled run (same settings) and
lists the grid points whose precision is at least `--floor` in both, by by-corpus recall, highest
first. `--select` does the same for a --novel run and a pooled run: the points whose novel-name
precision is at least `--floor-novel` and pooled precision at least `--floor`, by novel-name
recall, highest first (ties: higher novel-name precision): the order in which operating points
are considered; training/guard_person.py then checks the unit tests and guards at each (the
rule is in training/README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import train_person
from train_person import corpus_records, fit, person_spans

from signalvault.guardrails.pii import PiiDetector
from signalvault.guardrails.pii_names import NameRules, load_lexicon
from signalvault.guardrails.pii_person import PersonDetector, PersonModel

THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
VETOES = (0.15, 0.2, 0.3, 0.4, 0.5)
Counts = dict[str, list[int]]  # "corpus|threshold|veto" -> [true preds, preds, found, golds]


def fold_of(text: str, folds: int) -> int:
    digest = hashlib.sha256(("cv|" + text).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % folds


def corpus(rec: dict[str, Any]) -> str:
    return "btc" if "btc_recommended_split" in rec.get("meta", {}) else "wnut"


def names_of(detector: PiiDetector, text: str) -> list[tuple[int, int]]:
    return [(f.start, f.end) for f in detector(text) if f.kind == "PERSON"]


def tally(
    counts: Counts, key: str, golds: Sequence[tuple[int, int]], preds: Sequence[tuple[int, int]]
) -> None:
    row = counts.setdefault(key, [0, 0, 0, 0])
    row[0] += sum(any(s < ge and gs < e for gs, ge in golds) for s, e in preds)
    row[1] += len(preds)
    row[2] += sum(any(s < ge and gs < e for s, e in preds) for gs, ge in golds)
    row[3] += len(golds)


def name_tokens(rec: dict[str, Any]) -> set[str]:
    """The lower-cased word pieces of the record's gold PERSON spans (handles left out)."""
    text = rec["text"]
    return {t for s, e in person_spans(rec) for t in re.findall(r"\w+", text[s:e].lower())}


def novel_folds(recs: list[dict[str, Any]], folds: int) -> list[int]:
    """The fold of each record for --novel: a hash of its most frequent name token, or of its
    text when it has no name."""
    names = [name_tokens(rec) for rec in recs]
    freq = Counter(t for tokens in names for t in tokens)
    out = []
    for rec, tokens in zip(recs, names, strict=True):
        key = max(tokens, key=lambda t: (freq[t], t)) if tokens else rec["text"]
        out.append(fold_of(key, folds))
    return out


def cross_validate(data: Path, folds: int, by_corpus: bool = False, novel: bool = False) -> Counts:
    """Pooled counts over `folds` hash folds; `by_corpus`: two folds instead, each corpus
    scanned by models trained on the other one (a change of text source, as new text brings);
    `novel`: folds whose names never occur as PERSON in their training records (see --novel)."""
    lexicon = load_lexicon()
    rules = NameRules(lexicon)
    recs = corpus_records(data)
    synthetic = list(train_person.synthetic.records(train_person.SYNTHETIC))
    detector = PiiDetector()
    names = detector._names  # the model is swapped per fold
    assert isinstance(names, PersonDetector)
    counts: Counts = {}

    if by_corpus:
        assigned = [("btc", "wnut").index(corpus(rec)) for rec in recs]
        folds = 2
    elif novel:
        assigned = novel_folds(recs, folds)
    else:
        assigned = [fold_of(rec["text"], folds) for rec in recs]
    tokens = [name_tokens(rec) for rec in recs] if novel else []
    for fold in range(folds):
        test = [r for r, f in zip(recs, assigned, strict=True) if f == fold]
        if novel:
            seen = {
                name for toks, f in zip(tokens, assigned, strict=True) if f == fold for name in toks
            }
            train = [
                r
                for r, f, t in zip(recs, assigned, tokens, strict=True)
                if f != fold and not t & seen
            ]
            dropped = sum(f != fold for f in assigned) - len(train)
            print(f"fold {fold + 1}: {dropped} training records dropped", file=sys.stderr)
        else:
            train = [r for r, f in zip(recs, assigned, strict=True) if f != fold]
        weights, _ = fit(lexicon, rules, train + synthetic)
        names.model = PersonModel(lexicon, weights)
        for threshold, veto in itertools.product(THRESHOLDS, VETOES):
            names.MODEL_THRESHOLD, names.VETO = threshold, veto
            for rec in test:
                golds = person_spans(rec)
                preds = names_of(detector, rec["text"])
                for key in (corpus(rec), "all"):
                    tally(counts, f"{key}|{threshold}|{veto}", golds, preds)
        print(f"fold {fold + 1}/{folds} done", file=sys.stderr, flush=True)
    return counts


def report(counts: Counts) -> str:
    lines = [
        f"{'set':6} {'thr':>5} {'veto':>5} {'gold':>6} {'pred':>6} {'P':>6} {'R':>6} {'F1':>6}"
    ]
    for key, (tp, n_pred, found, n_gold) in counts.items():
        name, threshold, veto = key.split("|")
        p = tp / n_pred if n_pred else 0.0
        r = found / n_gold if n_gold else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        lines.append(
            f"{name:6} {threshold:>5} {veto:>5} {n_gold:6} {n_pred:6} {p:6.3f} {r:6.3f} {f1:6.3f}"
        )
    return "\n".join([lines[0], *sorted(lines[1:])])


def _rate(row: list[int]) -> tuple[float, float]:
    tp, n_pred, found, n_gold = row
    return (tp / n_pred if n_pred else 0.0), (found / n_gold if n_gold else 0.0)


def rank(
    scanned: Counts, pooled: Counts, floor_scanned: float, floor: float
) -> list[tuple[str, str, float, float, float, float]]:
    """(threshold, veto, P, R, pooled P, pooled R) of the grid points whose precision is at
    least `floor_scanned` in `scanned` (a --by-corpus or --novel run) and at least `floor` in
    `pooled` folds, highest recall in `scanned` first (ties: higher precision there). The target
    asks for recall on text (and names) the training never showed, at a precision floor."""
    out = []
    for key, row in scanned.items():
        name, threshold, veto = key.split("|")
        if name != "all" or key not in pooled:
            continue
        p_scanned, r_scanned = _rate(row)
        p_pool, r_pool = _rate(pooled[key])
        if p_scanned >= floor_scanned and p_pool >= floor:
            out.append((threshold, veto, p_scanned, r_scanned, p_pool, r_pool))
    return sorted(out, key=lambda t: (-round(t[3], 3), -t[2]))


def main(argv: list[str] | None = None) -> int:
    train_person.fix_hash_seed()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/eval"))
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--json", action="store_true", help="print the counts as JSON")
    ap.add_argument("--by-corpus", action="store_true", help="train on one corpus, scan the other")
    ap.add_argument("--novel", action="store_true", help="folds of names unseen in training")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a training setting of train_person.SETTINGS (e.g. epochs=20)",
    )
    ap.add_argument("--rank", nargs=2, type=Path, metavar=("BY_CORPUS_JSON", "POOLED_JSON"))
    ap.add_argument("--floor", type=float, default=0.78, help="pooled precision floor")
    ap.add_argument("--select", nargs=2, type=Path, metavar=("NOVEL_JSON", "POOLED_JSON"))
    ap.add_argument("--floor-novel", type=float, default=0.75, help="novel precision floor")
    args = ap.parse_args(argv)
    if args.by_corpus and args.novel:
        ap.error("--by-corpus and --novel are two different fold schemes; pick one")
    if args.select:
        novel, pooled = (json.loads(path.read_text()) for path in args.select)
        for threshold, veto, p, r, pp, pr in rank(novel, pooled, args.floor_novel, args.floor):
            print(
                f"{threshold:>5} {veto:>5}  novel P {p:.3f} R {r:.3f}  pooled P {pp:.3f} R {pr:.3f}"
            )
        return 0
    if args.rank:
        by_corpus, pooled = (json.loads(path.read_text()) for path in args.rank)
        for threshold, veto, p, r, _, _ in rank(by_corpus, pooled, args.floor, args.floor):
            print(f"{threshold:>5} {veto:>5}  by-corpus P {p:.3f} R {r:.3f}")
        return 0
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in train_person.SETTINGS:
            ap.error(f"no setting {key!r}; known: {', '.join(train_person.SETTINGS)}")
        train_person.SETTINGS[key] = type(train_person.SETTINGS[key])(value)
    counts = cross_validate(args.data, args.folds, args.by_corpus, args.novel)
    print(json.dumps(counts, sort_keys=True) if args.json else report(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
