"""Detector accuracy on the shared labelled sets (../shared/eval), scored by that folder's score.py.

    python bench/eval.py [--data DIR] [--only GLOB] [--lenient-generic] [--show-errors N] [--json]
                         [--no-cross] [--no-heldout] [--splits tune,untouched,fresh9]

Spans (pii-*, secrets-*) go through score.py; injection-* records are whole-text labels, scored here
as precision / recall / false-positive rate. "FAstrict" counts any finding on a gold-free record,
ignoring labels_complete_for. Neither the data nor score.py is copied into the repo.
Then the held-out sets of bench/heldout.py (generated into a temporary folder) are scored the same
way, per split: `tune` (looked at while tuning) and `untouched` (never tuned on).
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import importlib.util
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signalvault.guardrails.finding import Finding

# Beside the checkout (../shared), else the workplace's fixed place (worktrees, CI clones).
_DATA_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "shared" / "eval",
    Path("/work/shared/eval"),
)
DEFAULT_DATA = next((p for p in _DATA_CANDIDATES if p.is_dir()), _DATA_CANDIDATES[0])
Detect = Callable[[str], list[Finding]]


def _load_score(data: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("shared_eval_score", data / "score.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"no score.py in {data}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _detector(name: str) -> Detect | None:
    """The detector for a data file, by its prefix; None (with a message) when unavailable."""
    if name.startswith("pii-"):
        try:
            pii = importlib.import_module("signalvault.guardrails.pii")
        except ImportError as exc:
            print(f"skip {name}: signalvault.guardrails.pii is not importable ({exc})")
            return None
        detector: Detect = pii.PiiDetector()
        return detector
    if name.startswith("secrets-"):
        from signalvault.guardrails.secrets import SecretsDetector

        return SecretsDetector()
    if name.startswith("injection-"):
        from signalvault.guardrails.injection import InjectionDetector

        return InjectionDetector()
    print(f"skip {name}: no detector for this prefix")
    return None


def _read(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _fmt(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def _eval_spans(
    score: ModuleType, path: Path, detect: Detect, tmp: Path, args: argparse.Namespace
) -> dict[str, Any]:
    gold = _read(path)
    preds, strict_alarms, negatives = [], 0, 0
    started = time.perf_counter()
    for rec in gold:
        found = detect(rec["text"])
        preds.append(
            {
                "id": rec["id"],
                "entities": [
                    {"start": f.start, "end": f.end, "type": f.kind, "score": f.score}
                    for f in found
                ],
            }
        )
        if not (rec.get("entities") or rec.get("secrets")):
            negatives += 1
            strict_alarms += bool(found)
    elapsed = time.perf_counter() - started
    pred_path = tmp / f"{path.stem}.pred.jsonl"
    pred_path.write_text("".join(json.dumps(p) + "\n" for p in preds), encoding="utf-8")
    res: dict[str, Any] = score.score(
        gold,
        score.load_jsonl(str(pred_path)),
        keep_errors=args.show_errors,
        lenient_generic=args.lenient_generic,
    )
    if not args.json:
        print(score.render(res, str(path), str(pred_path)))
        print(
            f"strict false alarms (any finding on a gold-free record, ignoring "
            f"labels_complete_for): {strict_alarms}/{negatives}  ({elapsed * 1000:.0f} ms)"
        )
    agn, neg = res["agnostic"], res["negatives"]
    return {
        "file": path.name,
        "records": len(gold),
        "recall": agn["recall"],
        "precision": agn["precision"],
        "typed_f1": res["typed"]["overall"]["f1"],
        "false_alarm": neg["false_alarm_rate"],
        "strict_false_alarm": strict_alarms / negatives if negatives else None,
    }


def _eval_labels(path: Path, detect: Detect, args: argparse.Namespace) -> dict[str, Any]:
    recs = _read(path)
    tp = fp = fn = tn = 0
    misses: list[str] = []
    for rec in recs:
        flagged = bool(detect(rec["text"]))
        positive = rec["label"] == "injection"
        tp += flagged and positive
        fp += flagged and not positive
        fn += positive and not flagged
        tn += not flagged and not positive
        if flagged != positive and len(misses) < max(args.show_errors, 0):
            misses.append(f"  [{'FP' if flagged else 'FN'}] {rec['text'][:120]!r}")
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    fpr = fp / (fp + tn) if fp + tn else None
    if not args.json:
        print(f"gold: {path}\nrecords: {len(recs)}  injection {tp + fn}, benign {fp + tn}")
        print(f"P {_fmt(precision)}  R {_fmt(recall)}  false-positive rate {_fmt(fpr)}")
        print("\n".join(misses))
    return {
        "file": path.name,
        "records": len(recs),
        "recall": recall,
        "precision": precision,
        "typed_f1": None,
        "false_alarm": fpr,
        "strict_false_alarm": fpr,
    }


def _cross_check(data: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Secrets and injection detectors over the other families' texts, which carry no labels for
    them: a rough false-alarm check on ordinary prose. Read the hits before calling them errors
    (Tensor Trust attacks, for one, quote real-looking passwords)."""
    from signalvault.guardrails.injection import InjectionDetector
    from signalvault.guardrails.secrets import SecretsDetector

    checks: tuple[tuple[str, Detect, tuple[str, ...]], ...] = (
        ("secrets", SecretsDetector(), ("pii-*", "injection-*")),
        ("prompt_injection", InjectionDetector(), ("pii-*", "secrets-*")),
    )
    rows = []
    for name, detect, patterns in checks:
        for pattern in patterns:
            for path in sorted(data.glob(pattern + ".jsonl")):
                texts = [r["text"] for r in _read(path)]
                hits = [t for t in texts if detect(t)]
                rows.append(
                    {
                        "detector": name,
                        "file": path.name,
                        "records": len(texts),
                        "flagged": len(hits),
                    }
                )
                if not args.json:
                    for text in hits[: max(args.show_errors, 0)]:
                        print(f"  [{name} on {path.name}] {text[:120]!r}")
    return rows


def _eval_heldout(score: ModuleType, args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    """Generate and score bench/heldout.py's sets, one folder per split."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    heldout = importlib.import_module("heldout")
    rows = []
    detectors: dict[str, Detect | None] = {}
    for split in args.splits.split(","):
        for path in heldout.write(split, tmp / split, args.data):
            if not fnmatch.fnmatch(path.name, args.only):
                continue
            family = path.name.split("-", 1)[0]
            if family not in detectors:
                detectors[family] = _detector(path.name)
            detect = detectors[family]
            if detect is None:
                continue
            if not args.json:
                print(f"\n=== {path.name} (held-out, {split}) ===")
            rows.append(_eval_spans(score, path, detect, tmp, args))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="folder with *.jsonl + score.py"
    )
    ap.add_argument("--only", default="*", help="glob over file names, e.g. 'secrets-*'")
    ap.add_argument("--lenient-generic", action="store_true", help="passed to score.py")
    ap.add_argument("--show-errors", type=int, default=0, help="list N misses and false alarms")
    ap.add_argument("--json", action="store_true", help="print the summary rows as JSON")
    ap.add_argument("--no-cross", action="store_true", help="skip the cross-family check")
    ap.add_argument("--no-heldout", action="store_true", help="skip bench/heldout.py's sets")
    ap.add_argument("--splits", default="tune,untouched,fresh9", help="held-out splits to score")
    args = ap.parse_args(argv)
    if not (args.data / "score.py").exists():
        raise SystemExit(f"{args.data} has no score.py; pass --data DIR")
    score = _load_score(args.data)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sv-eval-") as tmp:
        for path in sorted(args.data.glob("*.jsonl")):
            if not fnmatch.fnmatch(path.name, args.only):
                continue
            detect = _detector(path.name)
            if detect is None:
                continue
            if not args.json:
                print(f"\n=== {path.name} ===")
            if path.name.startswith("injection-"):
                rows.append(_eval_labels(path, detect, args))
            else:
                rows.append(_eval_spans(score, path, detect, Path(tmp), args))
        if not args.no_heldout:
            rows.extend(_eval_heldout(score, args, Path(tmp)))
    cross = [] if args.no_cross or args.only != "*" else _cross_check(args.data, args)
    if args.json:
        print(json.dumps({"files": rows, "cross_check": cross}, indent=1))
        return 0
    print("\n=== summary (agnostic recall / precision; false alarms on gold-free records) ===")
    print(f"{'file':<46}{'n':>6}{'R':>8}{'P':>8}{'F1typed':>9}{'FA':>8}{'FAstrict':>10}")
    for r in rows:
        print(
            f"{r['file']:<46}{r['records']:>6}{_fmt(r['recall']):>8}{_fmt(r['precision']):>8}"
            f"{_fmt(r['typed_f1']):>9}{_fmt(r['false_alarm']):>8}{_fmt(r['strict_false_alarm']):>10}"
        )
    if cross:
        print("\n=== cross-check: records flagged in other families' texts (no labels there) ===")
        for c in cross:
            print(f"{c['detector']:<18}{c['file']:<46}{c['flagged']:>6} / {c['records']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
