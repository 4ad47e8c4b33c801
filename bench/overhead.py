"""Gateway overhead against peers, measured in one run: `make bench` (not a test).

Runs ../shared/bench/run_peers.py (mock provider, wrk / stream load generator, LiteLLM and
Portkey installed under /tmp/svb by its --setup) with this checkout's `signalvault` as a target,
then prints, per mode and concurrency, each target's medians and signalvault's ratios to the
peers measured in the same run. Every request carries a new prompt (`--unique`), as real traffic
does, so no cache keyed on the prompt answers from memory; `--same` repeats one prompt.
Everything is loopback; nothing is installed into the repository.

    python bench/overhead.py                 # setup (idempotent) + 3 reps x 10 s, c=1,16
    python bench/overhead.py --quick         # 1 rep x 3 s, c=1,16 (a few minutes)
    python bench/overhead.py -- --conc 64 --modes json   # extra arguments for run_peers.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Beside the checkout, or at the workplace's fixed place for a checkout elsewhere (worktrees, CI).
SHARED_BENCH = next(
    (p for p in (ROOT.parent / "shared" / "bench", Path("/work/shared/bench")) if p.is_dir()),
    ROOT.parent / "shared" / "bench",
)
RESULTS = ROOT / "bench" / "results"
TARGETS = "direct,signalvault,portkey,litellm-fast"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 rep x 3 s at c=1,16")
    parser.add_argument("--no-setup", action="store_true", help="skip installing the peers")
    parser.add_argument("--targets", default=TARGETS)
    parser.add_argument("--same", action="store_true", help="one repeated prompt (cache hits)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (medians need >= 3)")
    parser.add_argument("--conc", default="1,16")
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
        "--conc",
        args.conc,
    ]
    command += [] if args.same else ["--unique"]
    if args.quick:
        command += ["--reps", "1", "--duration", "3", "--warmup", "1"]
    else:
        command += ["--reps", str(args.reps)]
    subprocess.run([*command, *args.extra], check=True)
    newest = max(RESULTS.glob("run-*.json"), key=lambda p: p.stat().st_mtime)
    print_report(json.loads(newest.read_text()))
    return 0


def print_report(run: dict[str, Any]) -> None:
    """Per cell: each target's median req/s, added latency, CPU per request and RSS; then
    signalvault's throughput over each peer's (same run, so the same machine state)."""
    cells: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for row in run["summary"]:
        cells.setdefault((row["mode"], int(row["conc"])), {})[row["target"]] = row
    print(f"\n{len(run['records'])} runs; medians of {run['meta']['args'].get('reps')} reps")
    print("target          mode   c    req/s  added p50  added p99  CPU us/req   RSS MiB")
    for (mode, conc), by_target in sorted(cells.items()):
        for target, row in sorted(by_target.items()):
            rps, cpu, rss = _median(row, "rps"), _median(row, "cpu"), _median(row, "rss")
            # gw CPU % of one core over the run / req/s = CPU time per request.
            per_request = cpu / 100 / rps * 1e6 if cpu and rps else None
            added = f"{_num(row.get('added_p50'), 10, 2)} {_num(row.get('added_p99'), 10, 2)}"
            print(
                f"{target:15} {mode:6} {conc:<3} {_num(rps, 8, 0)} {added}"
                f" {_num(per_request, 11, 0)} {_num(rss, 9, 0)}"
            )
    print("\nthroughput ratio, signalvault / peer (same run):")
    for (mode, conc), by_target in sorted(cells.items()):
        ours = _median(by_target.get("signalvault", {}), "rps")
        if not ours:
            continue
        ratios = ", ".join(
            f"{peer} {ours / value:.2f}x"
            for peer, row in sorted(by_target.items())
            if peer not in ("signalvault", "direct") and (value := _median(row, "rps"))
        )
        print(f"  {mode:6} c={conc:<3} {ours:8.0f} req/s   {ratios}")


def _median(row: dict[str, Any], name: str) -> float | None:
    value = row.get(name)  # (median, min, max) over repetitions
    return float(value[0]) if value and value[0] is not None else None


def _num(value: float | None, width: int, digits: int) -> str:
    return f"{value:{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


if __name__ == "__main__":
    sys.exit(main())
