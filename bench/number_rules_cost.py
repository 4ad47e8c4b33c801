"""Instructions per KB of the number rules (`scan_numbers`) and of the whole PII detector.

    python bench/number_rules_cost.py [--source DIR ...] [--target numbers|pii ...]
                                      [--sizes 1024 8192] [--seeds 8] [--annotate]

Each (checkout, target, size) runs in its own Python under `valgrind --tool=callgrind` with
instrumentation off: the child imports the checkout, builds `scan_speed.make_prompt(size, seed)`
for the given seeds (from this checkout's bench, so every source scans the same text), scans them
all once to warm lazy imports and regex caches, and only then is instrumentation switched on
(`callgrind_control -i on`) for one more scan of every prompt. Counts are repeatable to well under
1% on a busy machine, where timings are not. `--annotate` prints the top inclusive C functions.

`--digits K ...` scans instead, for each K, `--seeds` sentences each holding one bare number of K
digits (random, no leading zero: epoch times, ids, order numbers) and prints instructions per
sentence; a sentence without the number costs ~11K.

`--check` prints instead a sha256 over every candidate `scan_numbers` yields (scores below any
threshold and overlapping readings included, which bench/findings_hash.py never sees) on the
findings_hash corpus, each text also lower- and upper-cased, plus generated digit-run fuzz
(separators, letters, non-ASCII digits): a speed-up of the number rules must leave it unchanged.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

# The child: build prompts, warm up, then wait for the parent to switch counting on and off.
_CHILD = """
import sys
sys.path.insert(0, {bench!r})
import scan_speed
{use_source}
import number_rules_cost
texts = (
    number_rules_cost.bare_numbers({digits}, {seeds})
    if {digits}
    else [scan_speed.make_prompt({size}, seed) for seed in range(1, {seeds} + 1)]
)
if {target!r} == "numbers":
    from signalvault.guardrails.pii_numbers import scan_numbers
    scan = lambda text: list(scan_numbers(text))
else:
    from signalvault.guardrails.pii import PiiDetector
    scan = PiiDetector()
for text in texts:
    scan(text)
# No collection inside the window: whether one fell in it or not moved the count by up to 5%
# between runs of near-identical code (the gateway collects every 10,000 net allocations).
import gc
gc.collect()
gc.disable()
print(sum(len(t.encode()) for t in texts), len(texts), flush=True)
sys.stdin.readline()
for text in texts:
    scan(text)
print("done", flush=True)
sys.stdin.readline()
"""


# The bench modules put this checkout first on sys.path and import from it: both children then
# forget every signalvault module and import the one of the checkout being measured.
_USE_SOURCE = """
sys.path.insert(0, {source!r})
for name in [n for n in sys.modules if n.partition(".")[0] == "signalvault"]:
    del sys.modules[name]
import signalvault
assert signalvault.__file__.startswith({source!r}), signalvault.__file__
"""

# The --check child: hash every candidate of `scan_numbers` in the given checkout.
_CHECK = """
import hashlib, sys
sys.path.insert(0, {bench!r})
import findings_hash, number_rules_cost
{use_source}
from signalvault.guardrails.pii_numbers import scan_numbers
texts = findings_hash.corpus(findings_hash.DEFAULT_DATA)
texts = [v for t in texts for v in (t, t.lower(), t.upper())] + number_rules_cost.fuzz(20000)
digest, n = hashlib.sha256(), 0
for index, text in enumerate(texts):
    for candidate in scan_numbers(text):
        digest.update(f"{{index}}:{{candidate!r}}\\n".encode())
        n += 1
print(f"{{len(texts)}} texts, {{n}} candidates sha256 {{digest.hexdigest()}}")
"""

# Pieces the fuzz texts are built from: digit groups, every separator the run regex joins on,
# the characters its edge checks look at, letters of lettered IDs, cue words, non-ASCII digits.
_FUZZ_PIECES = (
    [str(n) for n in (7, 42, 415, 555, 2026, 1111, 4111, 90210, 123456, 9999999)]
    + list(" .-()+/:@#$_xX")
    + [" ext. ", " x", "ext", "\n", "T", "Z", "GB", "ab", "AB", "X-"]
    + ["card ", "phone: ", "ssn ", "order ", "invoice #", "apt ", "version ", "social security "]
    + ["\u0664\u0662", "\uff11\uff12\uff13", "\u00b2", "\u00e9", "ES", "it", "DE89"]
    + ["10.0.0.7", "192.168.1.20", ":8080", "/24", "/", "+44 ", "00", "(0)", "ABCDE"]
    + ["DE89 3704 0044 0532 0130 00", "gb82west12345698765432", "AB 12 34 56 C", "ABCPE1234F"]
    + ["12345678Z", "X-1234567-L", "RSSMRA85T10A562S", "S1234567D", "131052-308T", "131052A308T"]
    + ["BOXW310820HNERXN09", "T10", "2026-11-25T10:06:07Z"]
)


def bare_numbers(digits: int, count: int, seed: int = 16) -> list[str]:
    """`count` sentences, each with one random bare number of `digits` digits."""
    rng = random.Random(seed * 100 + digits)
    frame = "The event was logged at {} by the worker and stored in the archive for later."
    return [
        frame.format(rng.choice("123456789") + "".join(rng.choices("0123456789", k=digits - 1)))
        for _ in range(count)
    ]


def fuzz(count: int, seed: int = 16) -> list[str]:
    """`count` random texts of 3-25 pieces: dense in digit runs and their edge cases."""
    rng = random.Random(seed)
    joins = ["", "", "", " ", " ", "-", ".", ", ", "\n", " (", ") "]
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(3, 25)):
            if rng.random() < 0.45:
                size = rng.choice((1, 2, 3, 3, 4, 4, 5, 6, 7, 8, 9, 10, 11, 13, 16, 18))
                parts.append("".join(rng.choice("0123456789") for _ in range(size)))
            else:
                parts.append(rng.choice(_FUZZ_PIECES))
            parts.append(rng.choice(joins))
        texts.append("".join(parts))
    return texts


def check(source: Path) -> str:
    """The --check line for checkout `source`."""
    use_source = _USE_SOURCE.format(source=str(source))
    code = _CHECK.format(bench=str(BENCH), use_source=use_source)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def count(
    source: Path, target: str, size: int, seeds: int, annotate: int, digits: int = 0
) -> float:
    """Instructions per KB of prompt text for `target` in checkout `source` (per sentence with
    `digits`)."""
    with tempfile.TemporaryDirectory(prefix="numcost-") as tmp:
        out = Path(tmp) / "callgrind.out"
        use_source = _USE_SOURCE.format(source=str(source))
        code = _CHILD.format(
            bench=str(BENCH),
            use_source=use_source,
            size=size,
            seeds=seeds,
            target=target,
            digits=digits,
        )
        child = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-c",
                code,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        assert child.stdin is not None and child.stdout is not None
        scanned, sentences = map(int, child.stdout.readline().split())
        control = ["callgrind_control", "-i"]
        subprocess.run([*control, "on", str(child.pid)], check=True, capture_output=True)
        child.stdin.write("go\n")
        child.stdin.flush()
        child.stdout.readline()
        subprocess.run([*control, "off", str(child.pid)], check=True, capture_output=True)
        child.stdin.write("exit\n")
        child.stdin.flush()
        child.wait()
        total = sum(
            int(line.split()[1])
            for line in out.read_text(errors="replace").splitlines()
            if line.startswith("totals:")
        )
        if annotate:
            report = subprocess.run(
                ["callgrind_annotate", "--inclusive=yes", str(out)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            lines = [line for line in report.splitlines() if ":" in line and "(" in line]
            print("\n".join(lines[:annotate]))
        return total / sentences if digits else total / (scanned / 1024)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--source", action="append", type=Path, help="checkout(s) to compare")
    ap.add_argument("--target", action="append", choices=("numbers", "pii"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 8192])
    ap.add_argument("--seeds", type=int, default=16, help="prompts per size")
    ap.add_argument("--annotate", type=int, default=0, help="print the top N inclusive functions")
    ap.add_argument("--check", action="store_true", help="hash every candidate instead")
    ap.add_argument("--digits", type=int, nargs="+", help="sentences with one bare number each")
    args = ap.parse_args()
    if args.check:
        for source in [s.resolve() for s in (args.source or [ROOT])]:
            print(f"{source!s:28} {check(source)}", flush=True)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    for source in [s.resolve() for s in (args.source or [ROOT])]:
        for target in args.target or ["numbers", "pii"]:
            for digits in args.digits or []:
                per_sentence = count(source, target, 0, args.seeds, args.annotate, digits)
                print(
                    f"{source!s:28} {target:8} {digits:3} digits "
                    f"{per_sentence / 1e3:7.1f} K instructions/sentence",
                    flush=True,
                )
            for size in [] if args.digits else args.sizes:
                per_kb = count(source, target, size, args.seeds, args.annotate)
                print(
                    f"{source!s:28} {target:8} {size // 1024:3} KB prompts "
                    f"{per_kb / 1e6:7.3f} M instructions/KB",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
