"""The guards of the PERSON selection rule, for a model file at given operating points.

    .venv/bin/python training/guard_person.py MODEL.gz POINT [POINT ...] [--first]

POINT is THRESHOLD/VETO (e.g. 0.75/0.2), or `-` to read them from training/cv_person.py
--select output on standard input, in its order. At each point, in a fresh process that loads
MODEL.gz instead of the shipped model and sets PersonDetector's two thresholds:
tests/guardrails/test_person.py and test_pii.py must pass, the business-names `tune` split of
bench/heldout.py must keep PERSON precision and recall at 0.97 or more, and its `tune`
look-alikes must get no PERSON finding. `--first` stops at the first point that passes all
three (the rule takes it; training/README.md). Only training data and `tune` sets are read.
The children run the Python sources (SIGNALVAULT_PURE=1): in the mypyc-compiled build, modules
call load_weights directly, so patching it would leave the shipped model in place.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOOR = 0.97  # business-names tune precision and recall

# Runs in a child process: patches the model and the thresholds, then runs the unit tests
# (mode "tests") or counts the guards on the tune sets (mode "guards").
CHILD = r"""
import functools, json, sys
from pathlib import Path
sys.path[:0] = ["bench", "."]
import signalvault
assert signalvault.BUILD != "compiled", "compiled modules ignore the patches below"
import signalvault.guardrails.pii_person as m
mode, path, thr, veto = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
m.load_weights = functools.partial(m.load_weights, Path(path))
m.PersonDetector.MODEL_THRESHOLD = thr
m.PersonDetector.VETO = veto
if mode == "tests":
    import pytest
    tests = ["tests/guardrails/test_person.py", "tests/guardrails/test_pii.py"]
    sys.exit(pytest.main(["-q", "-x", "-p", "no:cacheprovider", *tests]))
import heldout
from signalvault.guardrails.pii import PiiDetector
det = PiiDetector()
tp = npred = found = ngold = 0
for rec in heldout.name_records("tune"):
    golds = [(e["start"], e["end"]) for e in rec["entities"] if e["type"] == "PERSON"]
    preds = [(f.start, f.end) for f in det(rec["text"]) if f.kind == "PERSON"]
    tp += sum(any(s < ge and gs < e for gs, ge in golds) for s, e in preds)
    npred += len(preds)
    found += sum(any(s < ge and gs < e for s, e in preds) for gs, ge in golds)
    ngold += len(golds)
look = sum(
    f.kind == "PERSON" for rec in heldout.lookalike_records("tune") for f in det(rec["text"])
)
print(json.dumps({"P": tp / max(npred, 1), "R": found / max(ngold, 1), "lookalikes": look}))
"""


def check(model: Path, threshold: str, veto: str) -> tuple[bool, str]:
    """(passes, what was found) at one operating point."""
    run = [sys.executable, "-c", CHILD]
    env = {**os.environ, "SIGNALVAULT_PURE": "1"}  # the sources, so the patches take effect
    tests = subprocess.run(
        [*run, "tests", str(model), threshold, veto],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    if tests.returncode:
        failed = [line for line in tests.stdout.splitlines() if line.startswith("FAILED")]
        return False, "unit tests fail: " + (failed[0] if failed else tests.stdout[-300:])
    guards = subprocess.run(
        [*run, "guards", str(model), threshold, veto],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    got = json.loads(guards.stdout.splitlines()[-1])
    ok = got["P"] >= FLOOR and got["R"] >= FLOOR and got["lookalikes"] == 0
    what = f"business tune P {got['P']:.3f} R {got['R']:.3f}, look-alike PERSON {got['lookalikes']}"
    return ok, ("tests pass, " if ok else "tests pass, guard fails: ") + what


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("points", nargs="+", help="THRESHOLD/VETO, or - for --select output on stdin")
    ap.add_argument("--first", action="store_true", help="stop at the first passing point")
    args = ap.parse_args(argv)
    points: list[tuple[str, str]] = []
    for point in args.points:
        if point == "-":
            points.extend((line.split()[0], line.split()[1]) for line in sys.stdin if line.strip())
        else:
            threshold, _, veto = point.partition("/")
            points.append((threshold, veto))
    model = args.model.resolve()
    for threshold, veto in points:
        ok, what = check(model, threshold, veto)
        print(f"{threshold:>5} {veto:>5}  {'PASS' if ok else 'fail'}  {what}", flush=True)
        if ok and args.first:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
