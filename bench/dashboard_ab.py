"""/v1 throughput with and without the dashboard, A/B in one run: `signalvault serve` from a source
tree without it against this checkout, alternating, with the same interpreter and packages, each
on a fresh SQLite store, the same mock provider and the same load (shared/bench/loadgen.py).

    git archive <commit before the dashboard> | tar -x -C /tmp/sv-base
    python bench/dashboard_ab.py --baseline /tmp/sv-base [--rounds 3] [-c 16] [-d 10]

Alternating rounds and medians keep the noise of a shared machine out of the comparison as far
as possible; the spread of the rounds is printed beside each median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sustained import free_port, process, wait_http

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" if (ROOT.parent / "shared").exists() else Path("/work/shared")
LOADGEN = SHARED / "bench" / "loadgen.py"
BODY = SHARED / "bench" / "body_chat.json"


def serve_and_load(source: Path, mock_url: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="svab-") as tmp:
        port = free_port()
        config = Path(tmp) / "signalvault.toml"
        config.write_text(
            f'[server]\nport = {port}\n[store]\ndata_dir = "{tmp}/data"\n'
            f'[[providers]]\nname = "mock"\nkind = "openai"\nbase_url = "{mock_url}"\n'
            'models = ["*"]\napi_key = "sk-bench-provider"\n'
        )
        # PYTHONPATH comes before the editable install: `-m signalvault` runs `source`'s code.
        env = {**os.environ, "SIGNALVAULT_CONFIG": str(config), "PYTHONPATH": str(source)}
        signalvault = [sys.executable, "-m", "signalvault"]
        created = subprocess.run(
            [*signalvault, "keys", "create", "--name", "ab", "--env", "dev", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        key = json.loads(created.stdout)["secret"]
        with process([*signalvault, "serve"], env):
            wait_http(f"http://127.0.0.1:{port}/readyz")
            command = [
                sys.executable,
                str(LOADGEN),
                f"http://127.0.0.1:{port}/v1/chat/completions",
                "--body-file",
                str(BODY),
                "-c",
                str(args.concurrency),
                "-d",
                str(args.duration),
                "--warmup",
                "2",
                "-H",
                f"Authorization: Bearer {key}",
            ]
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out.splitlines()[0]))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, required=True, help="source tree without it")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("-d", "--duration", type=float, default=10.0)
    args = parser.parse_args()
    variants = {"without dashboard": args.baseline, "with dashboard": ROOT}
    if not (args.baseline / "signalvault" / "app.py").exists():
        print(f"no signalvault source tree at {args.baseline}", file=sys.stderr)
        return 2
    mock_port = free_port()
    mock = [sys.executable, "-m", "signalvault", "mock-provider", "--port", str(mock_port)]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    with process(mock, dict(os.environ)):
        wait_http(f"http://127.0.0.1:{mock_port}/health")
        for round_number in range(args.rounds):
            order = list(variants) if round_number % 2 == 0 else list(reversed(variants))
            for name in order:
                result = serve_and_load(variants[name], f"http://127.0.0.1:{mock_port}/v1", args)
                results[name].append(result)
                print(f"round {round_number + 1} {name}: {result['rps']:.0f} req/s", flush=True)
    print(f"\n/v1 chat completions, c={args.concurrency}, {args.duration:g} s x {args.rounds}")
    medians = {}
    for name, runs in results.items():
        rps = [r["rps"] for r in runs]
        p99 = [r["latency_ms"].get("p99", float("nan")) for r in runs]
        medians[name] = statistics.median(rps)
        print(
            f"{name:18} median {medians[name]:8.0f} req/s (rounds {min(rps):.0f}-{max(rps):.0f})"
            f"  p99 {statistics.median(p99):.1f} ms"
        )
    ratio = medians["with dashboard"] / medians["without dashboard"]
    print(f"with / without: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
