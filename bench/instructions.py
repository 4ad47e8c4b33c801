"""Instructions per request of the gateway under callgrind: repeatable on a busy machine.

Runs `signalvault serve` under `valgrind --tool=callgrind` with instrumentation off through
startup and a warm-up, switches it on (`callgrind_control -i on`) for a fixed number of requests
(new prompts, concurrency 4), dumps, and divides the instruction count of the whole process
(every thread: commit, sealer) by the requests served. Valgrind runs it ~50x slower, so a run
takes a few minutes. Runs of the same code differ by up to ~4%, more on a busy machine (how many
seals and collections fall inside the window): sealing runs every 10 s of wall time, so under
valgrind's slow-down it weighs far more per request than at full speed (~1 M of ~4 M
instructions per JSON request, measured). `--env SIGNALVAULT_AUDIT_SEAL_INTERVAL_SECONDS=3600`
leaves it out and counts the request path alone.

    python bench/instructions.py                       # this checkout, JSON
    python bench/instructions.py --source /tmp/base --source . --mode stream
    python bench/instructions.py --env SIGNALVAULT_AUDIT_SEAL_INTERVAL_SECONDS=3600
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cost import ROOT, gateway, load, mock_provider
from sustained import free_port


def count(
    source: Path, mode: str, requests: int, mock_port: int, port: int, env: list[str]
) -> dict[str, float]:
    """Instructions per request for one checkout."""
    with tempfile.TemporaryDirectory(prefix="svcg-") as tmp:
        out = Path(tmp) / "callgrind.out"
        wrapper = [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=yes",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
        ]
        with gateway(source, mock_port, port, None, 1, env, wrapper=wrapper) as (pid, key):
            load(port, key, mode, 4, 300, unique=True)  # warm-up, not instrumented
            subprocess.run(
                ["callgrind_control", "-i", "on", str(pid)], check=True, capture_output=True
            )
            result = load(port, key, mode, 4, requests, unique=True)
            subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
            subprocess.run(
                ["callgrind_control", "-i", "off", str(pid)], check=True, capture_output=True
            )
            time.sleep(1)
        totals = [
            int(line.split()[1])
            for dump in Path(tmp).glob("callgrind.out*")
            for line in dump.read_text(errors="replace").splitlines()
            if line.startswith("totals:")
        ]
    served = result["ok"]
    return {"instructions": sum(totals), "served": served, "per_request": sum(totals) / served}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--source", action="append", type=Path, help="checkout(s) to compare")
    parser.add_argument("--mode", default="json", choices=("json", "stream"))
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--env", action="append", default=[], help="NAME=value for the gateway")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    mock_port, port = free_port(), free_port()  # two runs at once must not collide
    with mock_provider(mock_port, None):
        for source in [s.resolve() for s in (args.source or [ROOT])]:
            found = count(source, args.mode, args.requests, mock_port, port, args.env)
            print(
                f"{source.name:20} {args.mode:6} {found['per_request'] / 1e6:6.3f} M instructions"
                f"/request ({found['served']} requests)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
