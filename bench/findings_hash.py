"""A fingerprint of the PII detector's findings on a fixed corpus: a speed-up must not change it.

    python bench/findings_hash.py [--data DIR] [--only address|pii]

The corpus is built at run time (nothing shared is copied into the repo): every text of the
shared labelled sets (`../shared/eval/*.jsonl`: PII, secrets, injection), the prompts
`bench/scan_speed.py` generates (several seeds per size), every split of `bench/heldout.py`, and
Faker street addresses of many locales written into prose. The address rules also see each text
lower- and upper-cased (they take a different path on text without capitals). Prints, for the
address rules alone and for the whole detector, the number of findings and a sha256 over every
finding's (start, end, kind, repr(score)) in corpus order.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import heldout
import scan_speed
from eval import DEFAULT_DATA

from signalvault.guardrails.pii import PiiDetector
from signalvault.guardrails.pii_address import AddressRules

_FAKER_LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR",
                  "pl_PL", "fi_FI", "sv_SE", "da_DK", "no_NO", "hu_HU", "es_MX", "en_AU",
                  "en_CA"]  # fmt: skip
_FAKER_FRAMES = [
    "Please ship the order to {a} by Friday.",
    "my address is {a}",
    "The office moved.\n{a}\n\nThanks, the team",
    "{a}",
    "Send 3 copies to {a}, and 12 more next week.",
    "> {a}",
]


def _shared_texts(data: Path) -> Iterable[str]:
    for path in sorted(data.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                yield json.loads(line)["text"]


def _bench_prompts() -> Iterable[str]:
    for size in scan_speed.SIZES:
        for seed in range(1, 9):
            yield scan_speed.make_prompt(size, seed)


def _heldout_texts(data: Path) -> Iterable[str]:
    for split in heldout.SPLITS:
        for _, records in heldout.build(split, data):
            for record in records:
                yield record["text"]


def _faker_texts(per_locale: int = 60) -> Iterable[str]:
    from faker import Faker

    rng = random.Random(16)
    for locale in _FAKER_LOCALES:
        fake = Faker(locale)
        fake.seed_instance(16)
        for _ in range(per_locale):
            frame = rng.choice(_FAKER_FRAMES)
            yield frame.format(a=fake.address())


def corpus(data: Path) -> list[str]:
    """Every text, in a fixed order."""
    return [
        *_shared_texts(data),
        *_bench_prompts(),
        *_heldout_texts(data),
        *_faker_texts(),
    ]


Finding = tuple[int, int, str, float]  # start, end, kind, score


def fingerprint(texts: Iterable[str], scan: Callable[[str], Iterable[Finding]]) -> tuple[int, str]:
    """(number of findings, sha256 hex) over every finding of `scan` on `texts`."""
    digest = hashlib.sha256()
    count = 0
    for index, text in enumerate(texts):
        for start, end, kind, score in scan(text):
            digest.update(f"{index}:{start}:{end}:{kind}:{score!r}\n".encode())
            count += 1
    return count, digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--only", choices=("address", "pii"), default=None)
    args = ap.parse_args(argv)
    texts = corpus(args.data)
    print(f"corpus: {len(texts)} texts, {sum(len(t) for t in texts)} characters")
    if args.only in (None, "address"):
        rules = AddressRules()
        cased = [variant for t in texts for variant in (t, t.lower(), t.upper())]
        n, h = fingerprint(cased, lambda t: ((s, e, k, sc) for k, s, e, sc in rules.scan(t)))
        print(f"address rules: {n} findings sha256 {h}")
    if args.only in (None, "pii"):
        detector = PiiDetector()
        n, h = fingerprint(
            texts, lambda t: ((f.start, f.end, f.kind, f.score) for f in detector(t))
        )
        print(f"pii detector:  {n} findings sha256 {h}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
