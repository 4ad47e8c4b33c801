"""Where one request's time goes at concurrency 1: the gateway's phases, each on its own clock.

    python bench/phases.py [--requests 3000] [--source DIR] [--slow-ms 5] [--env NAME=value]

Starts the shared mock provider (CPU 0, with the load generator) and `signalvault serve` (CPU 1,
full default path, as bench/cost.py runs it) with `bench/phase_probe` first on its PYTHONPATH:
its `sitecustomize` wraps the phases (key check, input scan, write-ahead record and within it the
record's build, the wait for the commit thread and the SQLite commit, provider call, output scan,
completion) with clocks; a record committed on the event loop's thread (the request alone in the
gateway) has no wait for the commit thread. One request at a time (new
prompts), after a warm-up; prints each phase's median, p90 and p99 in microseconds, what the
phases leave of the time inside the gateway's handler ("rest": reading and parsing the body,
admission, sending the answer), and for the requests slower than `--slow-ms` which phase was
furthest above its median. Two clocks frame the handler: "to the handler" runs from the moment
the HTTP server begins parsing the request to the handler's start, "in the server" from then to
the handler's end (the answer written). The load generator's own latencies follow: what they
add to "in the server" is spent outside the gateway's Python (the kernel, loopback, scheduling,
the client). Wall times: compare runs made back to back on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cost import gateway, load, mock_provider
from sustained import free_port

ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).resolve().parent / "phase_probe"
COMMIT = "commit (SQLite, in write-ahead)"
BUILD = "record build (in write-ahead)"
TO_THREAD = "to the commit thread (in write-ahead)"
INSIDE = (BUILD, TO_THREAD, COMMIT)  # parts of the write-ahead phase
ORDER = ("key check", "input scan", "write-ahead", *INSIDE, "provider call", "output scan")
ORDER += ("completion",)


def measure(
    source: Path, requests: int, warmup: int, env: list[str]
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """The phases of each measured request (seconds), from the probe's file, and the load
    generator's latencies (ms)."""
    with tempfile.TemporaryDirectory(prefix="svphases-") as tmp:
        out = Path(tmp) / "phases.jsonl"
        extra = [f"PYTHONPATH={PROBE}:{source}", f"SIGNALVAULT_PHASES_OUT={out}", *env]
        mock_port, port = free_port(), free_port()
        with (
            mock_provider(mock_port, "0"),
            gateway(source, mock_port, port, "1", 1, extra) as (
                _,
                key,
            ),
        ):
            load(port, key, "json", 1, warmup, unique=True)
            client = load(port, key, "json", 1, requests, unique=True)["latency_ms"]
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    return rows[warmup:], client


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(rows: list[dict[str, float]], client: dict[str, float], slow_ms: float) -> None:
    for row in rows:
        inner = sum(row.get(p, 0.0) for p in ORDER if p not in INSIDE)
        row["rest"] = row["total"] - inner
    phases = [*ORDER, "rest", "total", "to the handler", "in the server"]
    medians = {p: statistics.median(r.get(p, 0.0) for r in rows) for p in phases}
    print(f"{len(rows)} requests, one at a time; microseconds:")
    print(f"  {'phase':34} {'median':>7} {'p90':>7} {'p99':>7}")
    for phase in phases:
        values = [r.get(phase, 0.0) * 1e6 for r in rows]
        print(
            f"  {phase:34} {statistics.median(values):7.0f} {quantile(values, 0.9):7.0f} "
            f"{quantile(values, 0.99):7.0f}"
        )
    print(
        f"  {'the load generator (client)':34} {client['p50'] * 1000:7.0f} "
        f"{client['p90'] * 1000:7.0f} {client['p99'] * 1000:7.0f}   max {client['max']:.2f} ms"
    )
    server_max = max(r["in the server"] for r in rows) * 1000
    print(f"  slowest request in the server: {server_max:.2f} ms")
    slow = [r for r in rows if r["total"] * 1000 > slow_ms]
    culprits: dict[str, int] = {}
    for row in slow:
        worst = max(
            (p for p in phases if p not in ("total", "in the server")),
            key=lambda p: row.get(p, 0.0) - medians[p],
        )
        culprits[worst] = culprits.get(worst, 0) + 1
    print(f"requests over {slow_ms:g} ms inside the handler: {len(slow)}; phase furthest above")
    print("its median in each: " + (", ".join(f"{p} {n}" for p, n in sorted(culprits.items(),
          key=lambda kv: -kv[1])) or "none"))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout to measure")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--slow-ms", type=float, default=5.0)
    parser.add_argument("--env", action="append", default=[], help="NAME=value for the gateway")
    args = parser.parse_args()
    rows, client = measure(args.source.resolve(), args.requests, args.warmup, args.env)
    report(rows, client, args.slow_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
