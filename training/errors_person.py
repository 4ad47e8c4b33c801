"""Where the PERSON detector loses names, on the novel-name folds of its own training data.

    .venv/bin/python training/errors_person.py [--data /work/shared/eval] [--folds 4]
                                               [--cache DIR] [--examples CATEGORY]
                                               [--set KEY=VALUE]

The folds, the fold models and the detector are those of `training/cv_person.py --novel` (each
fold scanned by models trained on the other folds less every record sharing a name token with
it), at PersonDetector's shipped thresholds. Every gold PERSON span (handles left out) is put in
one category: found (wholly or in part: score.py counts any overlap), or why it was missed:
no candidate token at all (and why not: lower case, glued to a digit or "_", a script without
capitals, ...), or candidate tokens that score below the threshold (by shape, sentence position,
gazetteer class, the best token's probability), or scored high but lost later. False positives
are counted by the same traits. Only training records are read; `--examples` prints a few of one
category, to read training text, never a held-out set. `--cache` keeps the fold models, so a
second run after a change of the detector's code (not of its features) skips the training;
`--set` trains the fold models of a variant (train_person.py's settings), in a cache of its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import cv_person
import synthetic
import train_person
from train_person import corpus_records, fit, person_spans

from signalvault.guardrails.pii import PiiDetector
from signalvault.guardrails.pii_checks import is_lower_case
from signalvault.guardrails.pii_names import TOKEN, NameLexicon, NameRules, glued, load_lexicon
from signalvault.guardrails.pii_person import PersonDetector, PersonModel, Token

Span = tuple[int, int]


def fold_models(
    data: Path, folds: int, cache: Path | None
) -> tuple[list[dict[str, Any]], list[int], list[dict[str, float]]]:
    """(records, fold of each, weights of each fold's models) as cv_person.py --novel makes them."""
    lexicon = load_lexicon()
    rules = NameRules(lexicon)
    recs = corpus_records(data)
    assigned = cv_person.novel_folds(recs, folds)
    tokens = [cv_person.name_tokens(rec) for rec in recs]
    made_up = list(synthetic.records(train_person.SYNTHETIC))
    models = []
    for fold in range(folds):
        path = cache / f"fold{fold}.json" if cache else None
        if path and path.exists():
            models.append(json.loads(path.read_text()))
            continue
        seen = {t for toks, f in zip(tokens, assigned, strict=True) if f == fold for t in toks}
        train = [
            r for r, f, t in zip(recs, assigned, tokens, strict=True) if f != fold and not t & seen
        ]
        weights, _ = fit(lexicon, rules, train + made_up)
        if path:
            path.write_text(json.dumps(weights))
        models.append(weights)
        print(f"fold {fold + 1}/{folds} trained", file=sys.stderr, flush=True)
    return recs, assigned, models


def _script(word: str) -> str:
    """'latin', 'uncased' (a script without capitals: Arabic, Thai, CJK) or 'other cased'."""
    letters = [ch for ch in word if ch.isalpha()]
    if all(ord(ch) < 0x250 for ch in letters):
        return "latin"
    if not any(ch.isupper() or ch.islower() for ch in letters):
        return "uncased"
    return "other cased"


def ungated_reason(text: str, span: Span, lex: NameLexicon, lowered: bool) -> str:
    """Why no token of a gold span is a candidate."""
    pieces = [
        (m.start() + span[0], m.end() + span[0]) for m in TOKEN.finditer(text[span[0] : span[1]])
    ]
    if not pieces:
        return "no letters"
    words = [text[s:e] for s, e in pieces]
    scripts = {_script(w) for w in words}
    if "uncased" in scripts:
        return "script without capitals"
    if any(w[:1].isupper() for w in words):
        if any(
            glued(text, s, e) for (s, e), w in zip(pieces, words, strict=True) if w[:1].isupper()
        ):
            return "capitalised, glued (digit, _, @, dot)"
        return "capitalised, inside a token"
    if lowered:
        return "lower case, in lower-case text"
    known = [w.lower() in lex.first or w.lower() in lex.last for w in words]
    return "lower case (list name), mixed-case text" if any(known) else "lower case (unknown)"


def traits(text: str, toks: list[tuple[Token, float]], feats: Any, lowered: bool) -> list[str]:
    """Shape, position and gazetteer of the best-scored token of a span."""
    token, _ = max(toks, key=lambda ts: ts[1])
    _, shape, gaz = feats.word(token.word)
    before = text[max(0, token.start - 1) : token.start]
    out = [
        "tokens=" + ("1" if len(toks) == 1 else "2+"),
        "shape=" + ("#" + shape if before == "#" else shape),
        "initial=" + str(_initial(text, token.start)),
        "gaz=" + ("first" if "first" in gaz else "last" if "last" in gaz else gaz.split("+")[0]),
    ]
    if lowered:
        out.append("lowered text")
    return out


def _initial(text: str, start: int) -> bool:
    at = start - 1
    while at >= 0 and text[at] in " \t\"'\u201c\u2018(#":
        at -= 1
    return at < 0 or text[at] in ".!?\n:"


def _bucket(p: float) -> str:
    for edge in (0.1, 0.3, 0.5, 0.6, 0.7, 0.75):
        if p < edge:
            return f"<{edge}"
    return ">=0.75"


def analyse(
    data: Path, folds: int, cache: Path | None, show: str | None
) -> dict[str, Counter[str]]:
    recs, assigned, models = fold_models(data, folds, cache)
    lexicon = load_lexicon()
    detector = PiiDetector()
    names = detector._names
    assert isinstance(names, PersonDetector)
    threshold = names.MODEL_THRESHOLD
    out: dict[str, Counter[str]] = {
        k: Counter() for k in ("gold", "missed", "ungated", "low", "fp")
    }
    tokens_seen: Counter[str] = Counter()
    shown = 0
    for fold in range(folds):
        names.model = PersonModel(lexicon, models[fold])
        feats = names.model.features
        for rec, f in zip(recs, assigned, strict=True):
            if f != fold:
                continue
            text = rec["text"]
            golds = person_spans(rec)
            preds = [(x.start, x.end) for x in detector(text) if x.kind == "PERSON"]
            lowered = is_lower_case(text)
            cands = feats.candidates(text, lowered)
            ruled = names.rules.scan(text, None, lowered)
            scores = names.model.token_scores(text, ruled, cands, lowered)
            corpus = cv_person.corpus(rec)
            for gs, ge in golds:
                for m in TOKEN.finditer(text[gs:ge]):
                    s, e = gs + m.start(), gs + m.end()
                    tokens_seen["gold tokens"] += 1
                    tokens_seen["candidates"] += any(t.start < e and s < t.end for t in cands)
                hit = [p for p in preds if p[0] < ge and gs < p[1]]
                out["gold"]["all"] += 1
                out["gold"][corpus] += 1
                if hit:
                    exact = any(p == (gs, ge) for p in hit)
                    out["gold"]["found, exact span" if exact else "found, other span"] += 1
                    continue
                toks = [(t, sc) for t, sc in scores if t.start < ge and gs < t.end]
                why = ""
                if not toks:
                    why = ungated_reason(text, (gs, ge), lexicon, lowered)
                    category = "not a candidate"
                    out["ungated"][why] += 1
                else:
                    best = max(sc for _, sc in toks)
                    if best < threshold:
                        category = "candidate, scored below threshold"
                        for trait in [*traits(text, toks, feats, lowered), "p" + _bucket(best)]:
                            out["low"][trait] += 1
                    else:
                        category = "scored at threshold, lost later"
                out["missed"][category] += 1
                out["missed"][category + " | " + corpus] += 1
                if show in (category, why) and shown < 40:
                    print(f"[{category}] {text[gs:ge]!r} :: {text[:160]!r}")
                    shown += 1
            for ps, pe in preds:
                if not any(ps < ge and gs < pe for gs, ge in golds):
                    toks = [(t, sc) for t, sc in scores if t.start < pe and ps < t.end]
                    out["fp"]["all"] += 1
                    for trait in traits(text, toks, feats, lowered) if toks else ["rules only"]:
                        out["fp"][trait] += 1
                    if show == "fp" and shown < 40:
                        print(f"[fp] {text[ps:pe]!r} :: {text[:160]!r}")
                        shown += 1
    out["tokens"] = tokens_seen
    return out


def main(argv: list[str] | None = None) -> int:
    train_person.fix_hash_seed()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/eval"))
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--cache", type=Path, help="folder for the fold models (reused if present)")
    ap.add_argument("--examples", help="print training examples of one category (or 'fp')")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in train_person.SETTINGS:
            ap.error(f"no setting {key!r}; known: {', '.join(train_person.SETTINGS)}")
        train_person.SETTINGS[key] = type(train_person.SETTINGS[key])(value)
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    result = analyse(args.data, args.folds, args.cache, args.examples)
    for name, counts in result.items():
        print(f"== {name}")
        for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"{n:6}  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
