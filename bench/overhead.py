"""Gateway overhead against peers, measured in one run: `make bench` (not a test).

Runs ../shared/bench/run_peers.py (mock provider, wrk / stream load generator, LiteLLM and
Portkey installed under /tmp/svb by its --setup) with this checkout's `signalvault` as a target,
then prints each target's throughput as a ratio to the peers measured in the same run.
Everything is loopback; nothing is installed into the repository.

    python bench/overhead.py                 # setup (idempotent) + 3 reps x 10 s, all cells
    python bench/overhead.py --quick         # 1 rep x 3 s, c=1,16 (a few minutes)
    python bench/overhead.py -- --conc 64 --modes json   # extra arguments for run_peers.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_BENCH = ROOT.parent / "shared" / "bench"
RESULTS = ROOT / "bench" / "results"
TARGETS = "direct,signalvault,portkey,litellm-fast"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 rep x 3 s at c=1,16")
    parser.add_argument("--no-setup", action="store_true", help="skip installing the peers")
    parser.add_argument("--targets", default=TARGETS)
    parser.add_argument("extra", nargs="*", help="passed to run_peers.py after --")
    args = parser.parse_args()
    runner = SHARED_BENCH / "run_peers.py"
    if not runner.exists():
        print(f"no benchmark harness at {runner} (../shared/bench)", file=sys.stderr)
        return 2
    if not args.no_setup:
        subprocess.run([sys.executable, str(runner), "--setup"], check=True)
    binary = Path(sys.executable).with_name("signalvault")
    command = [
        sys.executable,
        str(runner),
        "--targets",
        args.targets,
        "--signalvault-bin",
        str(binary),
        "--out",
        str(RESULTS),
    ]
    if args.quick:
        command += ["--reps", "1", "--duration", "3", "--warmup", "1", "--conc", "1,16"]
    subprocess.run([*command, *args.extra], check=True)
    newest = max(RESULTS.glob("run-*.json"), key=lambda p: p.stat().st_mtime)
    print_ratios(json.loads(newest.read_text())["summary"])
    return 0


def print_ratios(summary: list[dict]) -> None:
    """signalvault's req/s over each peer's, per mode and concurrency."""
    cells: dict[tuple[str, int], dict[str, float]] = {}
    for row in summary:
        median = (row.get("rps") or (None,))[0]  # (median, min, max) over repetitions
        if median is None:
            continue
        cells.setdefault((row["mode"], int(row["conc"])), {})[row["target"]] = float(median)
    print("\nthroughput ratio, signalvault / peer (same run):")
    for (mode, conc), by_target in sorted(cells.items()):
        ours = by_target.get("signalvault")
        if not ours:
            continue
        ratios = ", ".join(
            f"{peer} {ours / value:.2f}x"
            for peer, value in sorted(by_target.items())
            if peer != "signalvault" and value
        )
        print(f"  {mode:6} c={conc:<3} {ours:8.0f} req/s   {ratios}")


if __name__ == "__main__":
    sys.exit(main())
