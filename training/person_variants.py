"""Training side of the fifth round's whole-text variants (training/README.md): the rows of a
record with the document-level features (`doc`), and the second pass (`stack`), trained on
first-pass probabilities cross-fitted between the two halves of the records.
Inference: signalvault/guardrails/pii_person_doc.py.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Iterator
from typing import Any

from signalvault.guardrails.pii_names import NameRules
from signalvault.guardrails.pii_person import OWN_GATE, PersonFeatures, Token, rule_scores
from signalvault.guardrails.pii_person_doc import SECOND, doc_features, stack_features

Example = tuple[list[str], int]
# Lower-cased name words never drawn by `augmented`: cv_person.py --novel sets the scanned
# fold's names here, so the novel-name folds stay novel (no scanned name is a training PERSON).
EXCLUDE: set[str] = set()
# A record's candidates: (text, tokens, rule scores, rows, number of own features of each row).
Record = tuple[str, list[Token], list[float], list[Example], list[int]]


def record_rows(
    feats: PersonFeatures,
    rules: NameRules,
    recs: list[dict[str, Any]],
    spans: Callable[[dict[str, Any]], list[tuple[int, int]]],
    doc: bool,
) -> Iterator[Record]:
    """Each record's candidate tokens and training rows (own features first, then context and,
    with `doc`, the document-level features), as train_person.examples makes them."""
    for rec in recs:
        text = rec["text"]
        gold = spans(rec)
        lowered = not any(ch.isupper() for ch in text)
        tokens = feats.candidates(text, lowered)
        rules_at = rule_scores(rules.scan(text), tokens)
        docs = doc_features(feats, text, tokens, rules_at, lowered) if doc else None
        rows: list[Example] = []
        owns: list[int] = []
        for i, (token, rule) in enumerate(zip(tokens, rules_at, strict=True)):
            own = feats.own(token)
            row = own + feats.context(text, token, lowered, rule) + (docs[i] if docs else [])
            label = int(any(s < token.end and token.start < e for s, e in gold))
            rows.append((row, label))
            owns.append(len(own))
        yield text, tokens, rules_at, rows, owns


def _first_pass(weights: dict[str, float], record: Record) -> list[float]:
    """The first model's probabilities of a record's tokens, gated as PersonModel gates them."""
    _, _, rules_at, rows, owns = record
    out = []
    for (row, _), n_own, rule in zip(rows, owns, rules_at, strict=True):
        own = sum(weights.get(f, 0.0) for f in row[:n_own])
        if own < OWN_GATE and rule < 0.5:
            out.append(0.0)
            continue
        z = own + sum(weights.get(f, 0.0) for f in row[n_own:])
        out.append(1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z)))))
    return out


def fit_stacked(
    halves: list[tuple[PersonFeatures, list[Record]]],
    train: Callable[[list[Example], dict[str, Any]], dict[str, float]],
    settings: dict[str, Any],
) -> tuple[dict[str, float], list[Example]]:
    """(first-pass weights and second-pass weights, prefixed, of the main model; first-pass
    rows). Each half's first-pass probabilities come from a first model trained on the other
    half, so the second pass learns how far to trust them on text the first never saw."""
    base = [[row for record in records for row in record[3]] for _, records in halves]
    crossed = [train(base[1], settings), train(base[0], settings)]
    second_rows: list[Example] = []
    for (feats, records), weights in zip(halves, crossed, strict=True):
        for record in records:
            text, tokens, _, rows, _ = record
            stacks = stack_features(feats, text, tokens, _first_pass(weights, record))
            second_rows.extend(
                (row + stack, label) for (row, label), stack in zip(rows, stacks, strict=True)
            )
    first_rows = base[0] + base[1]
    second = {SECOND + f: w for f, w in train(second_rows, settings).items()}
    return {**train(first_rows, settings), **second}, first_rows


def _styled(name: str, like: str) -> str:
    """`name` in the case of the span it replaces."""
    if like.islower():
        return name.lower()
    if like.isupper() and len(like) > 1:
        return name.upper()
    return name


_PLACES_AND_FIRMS = ("LOCATION", "ORGANIZATION")  # replaced too with `augment` 2 (A2)


def _spans_to_replace(
    rec: dict[str, Any], spans: Callable[[dict[str, Any]], list[tuple[int, int]]], level: int
) -> list[tuple[int, int, str]]:
    """(start, end, type) of the spans `augmented` replaces, in text order; handles left out."""
    out = [(s, e, "PERSON") for s, e in spans(rec)]
    if level > 1:
        text = rec["text"]
        out += [
            (e["start"], e["end"], e["type"])
            for e in rec["entities"]
            if e["type"] in _PLACES_AND_FIRMS
            and not e["value"].lstrip().startswith("@")
            and not text[max(0, e["start"] - 2) : e["start"]].strip().endswith("@")
        ]
    return sorted(out)


def augmented(
    recs: list[dict[str, Any]],
    spans: Callable[[dict[str, Any]], list[tuple[int, int]]],
    level: int = 1,
    seed: int = 20261207,
) -> list[dict[str, Any]]:
    """Mention replacement (variant A1): each corpus record with a PERSON span, once more with
    every such span replaced by a Faker name of the synthetic sentences' locales, in its case.
    `level` 2 (A2): LOCATION and ORGANIZATION spans too, by Faker cities and companies."""
    from faker import Faker
    from synthetic import LOCALES

    rng = random.Random(seed)
    fakers = [Faker(loc) for loc in LOCALES]
    for n, fake in enumerate(fakers):
        fake.seed_instance(seed + n)
    out = []
    for rec in recs:
        gold = _spans_to_replace(rec, spans, level)
        if not gold or str(rec.get("id", "")).startswith("synthetic-"):
            continue
        text, pieces, entities, cursor = rec["text"], [], [], 0
        for start, end, kind in gold:
            if start < cursor:
                continue  # overlapping spans: the first one is replaced
            fake = rng.choice(fakers)
            words = len(text[start:end].split())
            name = ""
            if kind == "LOCATION":
                name = fake.city()
            elif kind == "ORGANIZATION":
                name = fake.company()
            while not name or EXCLUDE & set(re.findall(r"\w+", name.lower())):
                if words > 1:
                    name = f"{fake.first_name()} {fake.last_name()}"
                else:
                    name = fake.first_name() if rng.random() < 0.6 else fake.last_name()
            name = _styled(name, text[start:end])
            pieces.append(text[cursor:start])
            at = sum(map(len, pieces))
            pieces.append(name)
            if kind == "PERSON":
                entities.append({"start": at, "end": at + len(name), "type": kind, "value": name})
            cursor = end
        pieces.append(text[cursor:])
        meta = rec.get("meta", {})
        out.append({"id": f"{rec.get('id')}-aug", "text": "".join(pieces),
                    "entities": entities, "meta": meta})  # fmt: skip
    return out
