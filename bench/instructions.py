"""Instructions per request of the gateway under callgrind: repeatable on a busy machine.

Runs `signalvault serve` under `valgrind --tool=callgrind` with instrumentation off through
startup and a warm-up, switches it on (`callgrind_control -i on`) for a fixed number of requests
(new prompts, 4 in flight or `--concurrency`), dumps, and divides the instruction count of the
whole process (every thread: commit, sealer) by the requests served. Valgrind runs it ~50x
slower, so a run takes a few minutes. Runs of the same code differ by up to ~4%, more on a busy
machine (how many seals and collections fall inside the window): sealing runs every 10 s of wall
time, so under valgrind's slow-down it weighs far more per request than at full speed (~1 M of
~4 M instructions per JSON request, measured). `--env
SIGNALVAULT_AUDIT_SEAL_INTERVAL_SECONDS=3600` leaves it out and counts the request path alone.

Work on clocks (version checks, timers: ~0.15 M instructions per second of wall time here) costs
per second, not per request: at callgrind's pace a request lasts ~50x longer, so it weighed ~50x
more per request than at full speed, and more on a busy machine, where the same requests take
longer. Before the measured rounds the gateway idles under instrumentation (3 x 2 s); the median
rate is taken off each round in proportion to its wall time, as bench/tool_capture.py does.
With seals held off and a fixed hash seed (`--env PYTHONHASHSEED=1`), rounds of 200 JSON requests
agree within ~0.5% and a 3-round run takes under a minute (seals on: within ~3%).
`--rounds N` measures N rounds of `--requests` each and prints their median (and spread);
`--keep DIR` keeps the dumps (callgrind.out.N: the idle ones, then one per round) for
`callgrind_annotate`.

    python bench/instructions.py                       # this checkout, JSON
    python bench/instructions.py --source /tmp/base --source . --mode stream
    python bench/instructions.py --env SIGNALVAULT_AUDIT_SEAL_INTERVAL_SECONDS=3600
    python bench/instructions.py --rounds 3 --requests 200 --keep /tmp/dumps
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cost import ROOT, gateway, load, mock_provider
from sustained import free_port


class Callgrind:
    """Switches instrumentation of a process under callgrind on and off, and reads its dumps."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid = str(pid)
        self.out = out

    def _control(self, *options: str) -> None:
        subprocess.run(["callgrind_control", *options, self.pid], check=True, capture_output=True)

    def start(self) -> None:
        self._control("-i", "on")

    def stop(self) -> int:
        """Switch off, dump, and return the instructions counted since the last dump (every
        thread: a dump holds the whole process unless --separate-threads)."""
        self._control("-i", "off")
        before = set(self.out.parent.glob(self.out.name + ".*"))
        self._control("-d")
        dumps = set(self.out.parent.glob(self.out.name + ".*")) - before
        total = 0
        for dump in dumps:
            for line in dump.read_text(errors="replace").splitlines():
                if line.startswith("totals:"):  # (`summary:` reads 0 in a dump on demand)
                    total += int(line.split()[1])
        if not dumps:
            raise SystemExit(f"callgrind wrote no dump next to {self.out}")
        return total


def idle_rate(callgrind: Callgrind, seconds: float = 2.0) -> float:
    """Instructions per second the gateway spends with no request (median of three)."""
    rates = []
    for _ in range(3):
        started = time.monotonic()
        callgrind.start()
        time.sleep(seconds)
        rates.append(callgrind.stop() / (time.monotonic() - started))
    return statistics.median(rates)


def count(
    source: Path,
    mode: str,
    requests: int,
    rounds: int,
    mock_port: int,
    port: int,
    env: list[str],
    keep: Path | None,
    concurrency: int = 4,
) -> dict[str, Any]:
    """Instructions per request for one checkout: each round's, with the idle rate taken off."""
    with tempfile.TemporaryDirectory(prefix="svcg-") as tmp:
        where = Path(tmp)
        if keep is not None:
            where = keep.resolve() / source.name
            where.mkdir(parents=True, exist_ok=True)
        out = where / "callgrind.out"
        wrapper = [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=yes",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
        ]
        with gateway(source, mock_port, port, None, 1, env, wrapper=wrapper) as (pid, key):
            load(port, key, mode, concurrency, 300, unique=True)  # warm-up, not instrumented
            callgrind = Callgrind(pid, out)
            idle = idle_rate(callgrind)
            per_request, served = [], 0
            for _ in range(rounds):
                started = time.monotonic()
                callgrind.start()
                result = load(port, key, mode, concurrency, requests, unique=True)
                counted = callgrind.stop()
                wall = time.monotonic() - started
                per_request.append((counted - idle * wall) / result["ok"])
                served += result["ok"]
            time.sleep(1)
    return {
        "per_request": statistics.median(per_request),
        "rounds": per_request,
        "served": served,
        "idle": idle,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--source", action="append", type=Path, help="checkout(s) to compare")
    parser.add_argument("--mode", default="json", choices=("json", "stream"))
    parser.add_argument("--requests", type=int, default=400, help="requests per round")
    parser.add_argument("--rounds", type=int, default=1, help="measured rounds (median)")
    parser.add_argument("--keep", type=Path, help="keep the callgrind dumps here, per checkout")
    parser.add_argument("--env", action="append", default=[], help="NAME=value for the gateway")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="requests in flight (1: each commits alone)"
    )
    parser.add_argument(
        "--mock-chunks", type=int, help="events per streamed answer (the mock's default: 20)"
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    mock_port, port = free_port(), free_port()  # two runs at once must not collide
    with mock_provider(mock_port, None, args.mock_chunks):
        for source in [s.resolve() for s in (args.source or [ROOT])]:
            found = count(
                source,
                args.mode,
                args.requests,
                args.rounds,
                mock_port,
                port,
                args.env,
                args.keep,
                args.concurrency,
            )
            rounds = found["rounds"]
            spread = max(rounds) / min(rounds) - 1
            print(
                f"{source.name:20} {args.mode:6} {found['per_request'] / 1e6:6.3f} M instructions"
                f"/request, median of {len(rounds)} round(s) ("
                + " ".join(f"{r / 1e6:.3f}" for r in rounds)
                + f"; within {100 * spread:.1f}%; {found['served']} requests; idle "
                f"{found['idle'] / 1e3:.0f}k instructions/s taken off by wall time)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
