"""Held-out evaluation sets of our own, generated at eval time (nothing is committed but this code).

    python bench/heldout.py --split untouched --out /tmp/heldout   # write the JSONL files

Two splits were fixed before any detector was tuned on them: `tune` (looked at while changing
detectors) and `untouched` (only ever measured). They draw values from different seeds and use
disjoint sentence templates, so a rule written for one tune example has to generalise to count.
A third split, `fresh`, holds only informal text for PERSON: it was cut out of the model's
training data once `untouched` had informed a choice between detector variants (see
`fresh_records`). Its scores then informed a session's report, so it is no longer untouched:
since 2026-12-06 it is training data again, kept here only to regenerate what was reported.
A fourth split, `fresh2`, replaced it that day, before any change of that session was measured:
another hash slice of the same two corpora, disjoint from `fresh` (see `FRESH_SHARES`), cut out of
the PERSON model's training and measured once at the end of a change, summary rows only; the
model's settings are chosen by cross-validation on the training data (training/cv_person.py).
Its scores informed that session's report, so it too went back into training; a fifth split,
`fresh3`, replaced it later that day, before any change of the next session was measured
(see `FRESH_SHARES`), held out and measured the same way. Its scores informed the report of
2026-12-07, so it went back into training too; a sixth split, `fresh4`, replaced it that day,
before any change of the next session was measured (see `FRESH_SHARES`), held out the same way.
Its scores informed the next report of that day, so it went back into training as well; a
seventh split, `fresh5`, replaced it before any change of the following session was measured
(see `FRESH_SHARES`; about one record in ten of the two corpora again). Its scores informed that
session's report, so it is training data again; an eighth split, `fresh6`, replaced it on
2026-12-07 before any change of the next session was measured (about one record in ten again).
Its scores informed that session's report, so it is training data again; a ninth split, `fresh7`,
replaced it later that day before any change of the next session was measured. Its scores
informed the fourth round's report, so it is training data again; a tenth split, `fresh8`,
replaced it on 2026-12-07 before any change of the fifth round was measured. Its scores (the
fifth round's retrained model, summary rows) informed that round's report, so it is training data
again; an eleventh split, `fresh9`, replaced it on 2026-12-07 before any change of the sixth
round was measured (one record in two of what `fresh` to `fresh8` leave); the model shipped since
then holds it out. A twelfth split, `fresh10`, was cut on 2026-12-08 before anything of the seventh
round was run: all that `fresh` to `fresh9` leave (about one record in ten again), so the series is
used up and the slice after it must be cut another way. No variant of that round won and the model
was not retrained, so nothing was measured on `fresh10`: it is for the next retrain, which holds
it out (the shipped model was trained on it) and puts `fresh9` back into training.
Values come from Faker's locale providers and python-stdnum (random digits kept when the
validator accepts them), never from the detectors under test. Records use the shared formats
(`entities` / `secrets`, `meta.labels_complete_for`), so ../shared/eval/score.py scores them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from faker import Faker
from heldout_secrets import secret_records
from heldout_values import ID_VALUES, LOOKALIKES, id_value

FRESH_SPLITS = ("fresh", "fresh2", "fresh3", "fresh4", "fresh5", "fresh6", "fresh7", "fresh8",
                "fresh9", "fresh10")  # fmt: skip
SPLITS = ("tune", "untouched", *FRESH_SPLITS)
_SEEDS = {"tune": 1013, "untouched": 7919}

# {label} is the identifier's name in its country ("SIN", "NHS number"); {v} the value.
_ID_TEMPLATES = {
    "tune": [
        "Please update the file for the client, {label} {v}, before Friday.",
        "My {label} is {v} and I need the form filled in.",
        "{label}: {v}\nName on file matches, status active.",
        "Can you check whether {v} is a valid {label}? The applicant typed it twice.",
        "Customer record - {label} {v} - flagged for review by compliance.",
        "We received a letter quoting {label} {v}; draft a polite reply.",
    ],
    "untouched": [
        "Hi team, the new hire sent their {label} ({v}) by email, can you add it to payroll?",
        "Summarise this note: patient confirmed {label} {v} at reception.",
        "| field | value |\n| {label} | {v} |\n| status | pending |",
        "For the tax return I used {label} {v}, is that the right number to give?",
        "Verification failed for {label} {v}. What should the agent tell the caller?",
        "Translate to French: 'Your {label} {v} has been registered.'",
        'applicant.{key} = "{v}"  # {label} from the onboarding form',
    ],
}
_IP_TEMPLATES = {
    "tune": [
        "Connection refused from {v} on port 443, what does that mean?",
        "The server at {v} keeps timing out; here is the traceroute.",
        "Block {v} in the firewall please.",
        "Jan 12 10:22:01 gw sshd[812]: Failed password for root from {v} port 52311 ssh2",
    ],
    "untouched": [
        "Our VPN assigns {v} to my laptop, is that normal?",
        "nginx: upstream {v} returned 502 while reading response header",
        "Why does ping {v} work but curl does not?",
        'listen_address = "{v}"\n# set by the installer',
        "Audit: login for jdoe came from {v} at 03:14, flag it?",
        "Add a DNS record pointing app.internal at {v}.",
    ],
}
_NAME_TEMPLATES = {
    "tune": [
        "Please draft an email to {n} about the contract renewal.",
        "{n} asked for the Q3 numbers, can you summarise them?",
        "Schedule a call with {n} and {m} next Tuesday.",
        "Write a reference letter for {n}, who worked with us for three years.",
        "Meeting notes: {n} presented the roadmap; {m} raised budget concerns.",
    ],
    "untouched": [
        "Hi, I'm {n} from the finance team. Could you reformat this table?",
        "Forward the invoice to {n} in accounting and copy {m}.",
        "Translate this message from {n}: 'The shipment is delayed.'",
        "Customer complaint from {n}: the product arrived broken.",
        "Create a performance review summary for {n}.",
        "Thanks {n}, I will pass this on to {m} tomorrow.",
        "Our new CTO, {n}, starts on Monday; announce it to the team.",
    ],
}
_NAME_LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "pl_PL",
                 "en_IN", "sv_SE", "fi_FI", "en_AU", "en_CA", "ga_IE"]  # fmt: skip


def _entity(text: str, value: str, kind: str, after: int = 0) -> dict[str, Any]:
    start = text.index(value, after)
    return {"start": start, "end": start + len(value), "type": kind, "value": value}


def _record(
    name: str, i: int, text: str, entities: list[dict[str, Any]], complete: list[str]
) -> dict[str, Any]:
    return {
        "id": f"{name}-{i}",
        "text": text,
        "entities": entities,
        "source": "signalvault bench/heldout.py",
        "meta": {"labels_complete_for": complete, "labels_complete_for_canonical": complete},
    }


def id_records(split: str, per_kind: int = 12) -> list[dict[str, Any]]:
    """National identifiers and other structured PII in prompt-like sentences."""
    rng = random.Random(_SEEDS[split])
    fake = Faker()
    fake.seed_instance(_SEEDS[split])
    out = []
    kinds = sorted(ID_VALUES)
    for kind in kinds:
        for _ in range(per_kind):
            value, label = id_value(kind, rng)
            template = rng.choice(_ID_TEMPLATES[split])
            key = label.lower().replace(" ", "_").replace(".", "")
            text = template.format(label=label, v=value, key=key)
            out.append(_record("ids", len(out), text, [_entity(text, value, kind)], kinds))
    return out


def _ipv6(rng: random.Random) -> str:
    """Every RFC 4291 / 5952 spelling: compressed, full, embedded IPv4, zone ids."""
    groups = [rng.randrange(0x10000) for _ in range(8)]
    if rng.random() < 0.5:
        groups[0] = rng.choice([0x2001, 0x2A00, 0x2600, 0xFE80, 0xFD12])
    form = rng.randrange(8)
    if form == 0:
        return ":".join(f"{g:x}" for g in groups)
    if form == 1:
        return ":".join(f"{g:04x}" for g in groups)
    if form == 2:  # compressed run of zeros
        cut = rng.randrange(1, 6)
        keep = rng.randrange(1, 8 - cut)
        head = ":".join(f"{g:x}" for g in groups[:keep])
        tail = ":".join(f"{g:x}" for g in groups[keep + cut :])
        return f"{head}::{tail}"
    ipv4 = ".".join(str(rng.randrange(1, 255)) for _ in range(4))
    if form == 3:
        return f"::ffff:{ipv4}"
    if form == 4:
        return f"64:ff9b::{ipv4}"
    if form == 5:
        return "0000:0000:0000:0000:0000:ffff:" + ipv4
    if form == 6:
        return f"fe80::{groups[5]:x}:{groups[6]:x}:{groups[7]:x}%" + rng.choice(
            ["eth0", "en0", "wlan1", "3"]
        )
    return f"{groups[0]:x}:{groups[1]:x}::{groups[7]:x}".upper()


def ip_records(split: str, count: int = 160) -> list[dict[str, Any]]:
    rng = random.Random(_SEEDS[split] + 1)
    out = []
    for i in range(count):
        ipv4 = ".".join(str(rng.randrange(1, 255)) for _ in range(4))
        value = ipv4 if i % 4 == 0 else _ipv6(rng)
        text = rng.choice(_IP_TEMPLATES[split]).format(v=value)
        out.append(_record("ip", i, text, [_entity(text, value, "IP_ADDRESS")], ["IP_ADDRESS"]))
    return out


def lookalike_records(split: str, count: int = 300) -> list[dict[str, Any]]:
    """Harmless text that looks like PII: nothing in it may be altered."""
    rng = random.Random(_SEEDS[split] + 2)
    makers = LOOKALIKES[split]
    out = []
    for i in range(count):
        text = rng.choice(makers)(rng)
        out.append(_record("lookalike", i, text, [], []))
    # labels_complete_for empty means "complete for every type": any finding is a false alarm.
    for rec in out:
        del rec["meta"]
    return out


def name_records(split: str, count: int = 300) -> list[dict[str, Any]]:
    """Names from many locales in business-style prompts."""
    rng = random.Random(_SEEDS[split] + 3)
    fakers = {loc: Faker(loc) for loc in _NAME_LOCALES}
    for n, f in enumerate(fakers.values()):
        f.seed_instance(_SEEDS[split] + n)
    out = []
    for i in range(count):
        loc = rng.choice(_NAME_LOCALES)
        first = fakers[loc].first_name()
        full = fakers[loc].name() if rng.random() < 0.6 else f"{first} {fakers[loc].last_name()}"
        other = fakers[rng.choice(_NAME_LOCALES)].name()
        text = rng.choice(_NAME_TEMPLATES[split]).format(n=full, m=other)
        ents = [_entity(text, full, "PERSON")]
        if "{m}" in text or other in text[ents[0]["end"] :]:
            ents.append(_entity(text, other, "PERSON", ents[0]["end"]))
        out.append(_record("names", i, text, ents, ["PERSON"]))
    return out


def informal_records(data: Path, split: str) -> list[dict[str, Any]]:
    """Broad Twitter Corpus slices with @handles unlabelled (the WNUT convention we follow).

    tune: the corpus's own dev split (second half of section H); untouched: its test split
    (section F). The model trains on the rest (see training/README.md).
    """
    wanted = {"tune": "dev", "untouched": "test"}[split]
    out = []
    with (data / "pii-broad-twitter-corpus.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            rec = json.loads(line)
            if rec["meta"].get("btc_recommended_split") != wanted:
                continue
            ents = [
                e
                for e in rec["entities"]
                if e["type"] == "PERSON" and not e["value"].lstrip().startswith("@")
            ]
            out.append(_record("informal", len(out), rec["text"], ents, ["PERSON"]))
    return out


FRESH_SOURCES = {
    "btctrain": ("pii-broad-twitter-corpus.jsonl", "train"),
    "wnut17train": ("pii-wnut17-emerging-entities-train.jsonl", None),
}
# The fresh slices of the two training corpora, in the order they were cut: each takes one
# record in `share` of what the slices before it leave, by a hash of the text salted with its
# name (retweets and other repeats land on the same side), so no two overlap. fresh: about one
# record in six; fresh2, fresh3, fresh5 to fresh10 about 10% of the corpora each, fresh4 about
# 6%; fresh10 (share 1) takes every record the others leave. The shipped model holds out fresh9;
# fresh10 is for the next retrain (unmeasured); the others informed reports and are trained on.
FRESH_SHARES = {"fresh": 6, "fresh2": 8, "fresh3": 7, "fresh4": 10, "fresh5": 6, "fresh6": 5,
                "fresh7": 4, "fresh8": 3, "fresh9": 2, "fresh10": 1}  # fmt: skip


def fresh_slice(text: str) -> str | None:
    """The fresh slice a record of the training corpora belongs to, if any."""
    for split, share in FRESH_SHARES.items():
        digest = hashlib.sha256(f"{split}|{text}".encode()).digest()
        if int.from_bytes(digest[:8], "big") % share == 0:
            return split
    return None


def is_fresh6(text: str) -> bool:
    """True when the record belongs to the slice held out until 2026-12-07 (trained on since)."""
    return fresh_slice(text) == "fresh6"


def is_fresh7(text: str) -> bool:
    """True when the record belongs to the slice held out until 2026-12-07's sixth round."""
    return fresh_slice(text) == "fresh7"


def is_fresh9(text: str) -> bool:
    """True when the record belongs to the held-out slice (training/train_person.py skips it)."""
    return fresh_slice(text) == "fresh9"


def is_fresh10(text: str) -> bool:
    """True when the record belongs to the slice cut for the next retrain (never measured yet)."""
    return fresh_slice(text) == "fresh10"


def person_spans(text: str, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Gold PERSON entities without @handles, whether the "@" is inside the span or before it."""
    return [
        e
        for e in entities
        if e["type"] == "PERSON"
        and not e["value"].lstrip().startswith("@")
        and not text[max(0, e["start"] - 2) : e["start"]].strip().endswith("@")
    ]


def fresh_records(data: Path, source: str, split: str = "fresh") -> list[dict[str, Any]]:
    """The fresh split of one training corpus (Broad Twitter Corpus train split, sections A, B,
    E, G and the first half of H; WNUT-17 train). Both CC-BY-4.0, marked for training and tuning
    in ../shared/eval/PROVENANCE.md; cut out of training when this split was defined (stop 19),
    before any tuning of that session. Handles are unlabelled, as in the other informal sets.
    `split` "fresh2" to "fresh10": the slices that replaced it in turn (see the module docstring).
    """
    file, btc_split = FRESH_SOURCES[source]
    out = []
    with (data / file).open(encoding="utf-8") as lines:
        for line in lines:
            rec = json.loads(line)
            if btc_split and rec["meta"].get("btc_recommended_split") != btc_split:
                continue
            if fresh_slice(rec["text"]) == split:
                ents = person_spans(rec["text"], rec["entities"])
                out.append(_record(f"{split}-{source}", len(out), rec["text"], ents, ["PERSON"]))
    return out


BUILDERS: dict[str, Callable[[str], list[dict[str, Any]]]] = {
    "ids": id_records,
    "ip": ip_records,
    "lookalikes": lookalike_records,
    "business-names": name_records,
    "secrets": secret_records,
}


def build(split: str, data: Path | None) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(file name, records) for every held-out set of `split`."""
    if split in FRESH_SPLITS:
        for source, (file, _) in FRESH_SOURCES.items():
            if data is not None and (data / file).exists():
                records = fresh_records(data, source, split)
                yield f"pii-heldout-informal-{source}-{split}.jsonl", records
        return
    for name, builder in BUILDERS.items():
        prefix = "secrets" if name == "secrets" else "pii"
        yield f"{prefix}-heldout-{name}-{split}.jsonl", builder(split)
    if data is not None and (data / "pii-broad-twitter-corpus.jsonl").exists():
        yield f"pii-heldout-informal-btc-{split}.jsonl", informal_records(data, split)


def write(split: str, out: Path, data: Path | None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, records in build(split, data):
        path = out / name
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=SPLITS, default="untouched")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("/work/shared/eval"))
    args = ap.parse_args(argv)
    for path in write(args.split, args.out, args.data):
        print(path)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
