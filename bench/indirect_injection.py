"""Indirect prompt injection: how many instructions planted in data a detector finds, and how
often it flags clean documents, on a tune half and an untouched half fixed up front.

    python bench/indirect_injection.py [--bipia DIR] [--detector indirect|direct|embedding]
                                       [--show-misses N]

Data (public, read offline, never in the repo): BIPIA (microsoft/BIPIA, `benchmark/`) gives the
planted instructions, `text_attack_train.json` for the tune half and `text_attack_test.json` for
the untouched half, and the clean contexts (its e-mail, code and news-abstract contexts) together
with LLMail-Inject's clean e-mails (`modal/msref/fp_tests.json` of a public replication repo);
the DIR holds `attacks_train.json`, `attacks_test.json` and `clean.jsonl` ({"source", "text"})
copied from them. Clean contexts alternate between the halves. As BIPIA does, each planted
document is a clean context with one instruction inserted at its start, middle or end; each half
has 200 planted documents and 200 clean ones (its contexts plus WNUT-17 social-media posts from
the workplace's shared/eval: the tune half from its train file, the untouched half from dev).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signalvault.guardrails.finding import Finding

# Beside the checkout (../shared), else the workplace's fixed place (as tests/shared_data.py).
SHARED = next(
    (p for p in (Path(__file__).resolve().parents[1].parent / "shared" / "eval",
                 Path("/work/shared/eval")) if p.is_dir()),
    Path("/work/shared/eval"),
)  # fmt: skip
PER_HALF = 200
Detect = Callable[[str], list[Finding]]


def _attacks(path: Path) -> list[str]:
    return [a for group in json.loads(path.read_text()).values() for a in group]


def _plant(context: str, attack: str, where: int) -> str:
    if where == 0:
        return f"{attack}\n{context}"
    if where == 2:
        return f"{context}\n{attack}"
    middle = len(context) // 2
    cut = context.find("\n", middle)
    if cut == -1:
        cut = context.find(". ", middle)
        cut = cut + 1 if cut != -1 else middle
    return f"{context[:cut]}\n{attack}\n{context[cut:]}"


def _social(name: str, count: int) -> list[str]:
    texts = []
    for line in (SHARED / name).read_text().splitlines():
        text = json.loads(line)["text"]
        if len(text) >= 60:
            texts.append(text)
        if len(texts) == count:
            break
    return texts


def halves(bipia: Path) -> dict[str, tuple[list[str], list[str]]]:
    """{half: (planted documents, clean documents)} for `tune` and `untouched`."""
    contexts = [
        json.loads(line)["text"] for line in (bipia / "clean.jsonl").read_text().splitlines()
    ]
    result = {}
    for half, attack_file, social_file, parity in (
        ("tune", "attacks_train.json", "pii-wnut17-emerging-entities-train.jsonl", 0),
        ("untouched", "attacks_test.json", "pii-wnut17-emerging-entities-dev.jsonl", 1),
    ):
        mine = contexts[parity::2]
        attacks = _attacks(bipia / attack_file)
        planted = [
            _plant(mine[i % len(mine)], attacks[(i * 7) % len(attacks)], i % 3)
            for i in range(PER_HALF)
        ]
        clean = mine + _social(social_file, PER_HALF - len(mine))
        result[half] = (planted, clean)
    return result


def detector(name: str) -> Detect:
    if name == "direct":
        from signalvault.guardrails.injection import InjectionDetector

        return InjectionDetector()
    if name == "embedding":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from indirect_embedding import EmbeddingDetector  # optional: needs torch

        return EmbeddingDetector()
    from signalvault.guardrails.indirect_injection import IndirectInjectionDetector

    return IndirectInjectionDetector()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bipia", type=Path, default=Path("/tmp/bipia"))  # noqa: S108 (read-only data)
    parser.add_argument(
        "--detector", choices=("indirect", "direct", "embedding"), default="indirect"
    )
    parser.add_argument("--show-misses", type=int, default=0)
    args = parser.parse_args()
    detect = detector(args.detector)
    for half, (planted, clean) in halves(args.bipia).items():
        started = time.perf_counter()
        caught = [bool(detect(text)) for text in planted]
        alarms = [bool(detect(text)) for text in clean]
        seconds = time.perf_counter() - started
        kb = sum(len(t.encode()) for t in planted + clean) / 1024
        print(
            f"{args.detector:9} {half:9}  recall {sum(caught)}/{len(planted)} "
            f"= {sum(caught) / len(planted):.2f}   false alarms {sum(alarms)}/{len(clean)} "
            f"= {sum(alarms) / len(clean):.3f}   {seconds * 1000 / kb:.3f} ms/KB"
        )
        if args.show_misses and half == "tune":
            for text, hit in zip(planted, caught, strict=True):
                if not hit and args.show_misses > 0:
                    args.show_misses -= 1
                    print("  MISS:", text.replace("\n", " | ")[:160])
            for text, hit in zip(clean, alarms, strict=True):
                if hit:
                    print("  ALARM:", text.replace("\n", " | ")[:160])


if __name__ == "__main__":
    main()
