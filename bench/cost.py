"""Per-request cost of the gateway: CPU per request, RSS, and the c=1 latency histogram.

CPU per request is the gateway process tree's user+system time (/proc/<pid>/stat) over a fixed
number of requests divided by that number, so it holds on a busy machine where req/s does not.
Each run starts the shared mock provider and `signalvault serve` (full default path: key check,
default guardrails, encrypted write-ahead record, synchronous=full) in a fresh data directory,
warms up, then measures. Every prompt differs (--same: one repeated prompt, scan-cache hits).
The client's CPU per request (the mock provider and the load generator) is measured alongside:
with `--no-pin` the gateway shares the machine's two cores with it, so two workers can serve at
most 2 / (g + c) requests per second (g, c: gateway's and client's CPU per request), however
many workers; the report prints that ceiling and its ratio to the run's own req/s.

    python bench/cost.py                                  # json + stream, c=16, then c=1 histogram
    python bench/cost.py --source /tmp/base --source .    # A/B two checkouts, runs alternated
    python bench/cost.py --modes json --requests 3000 --rounds 5 --histogram 0
    python bench/cost.py --server uvicorn --server granian:uvloop --server granian:rloop

--source DIR runs the `signalvault` package of another checkout (same virtualenv) through
PYTHONPATH, so a change can be compared with its parent commit in one alternating run.
--server picks the ASGI server of each gateway: `uvicorn` is `signalvault serve` (uvicorn,
uvloop, httptools behind GuardedHttpTools); `granian:LOOP[:st|mt]` (LOOP: uvloop, rloop or
asyncio; then granian's runtime mode, by default auto, which is mt for ASGI) serves the same
app (`signalvault.server:worker_app`, as a `serve` worker loads it) under granian's ASGI
interface, HTTP/1 only, no websockets, no access log, with the gateway's default header limit
and timeout (`pip install -e '.[bench-granian]'` first: the gateway does not depend on it).
Every source runs under every server, all side by side, taking turns.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sustained import free_port, process

ROOT = Path(__file__).resolve().parents[1]
# Beside the checkout, or at the workplace's fixed place for a checkout elsewhere (worktrees, CI).
SHARED_BENCH = next(
    (p for p in (ROOT.parent / "shared" / "bench", Path("/work/shared/bench")) if p.is_dir()),
    ROOT.parent / "shared" / "bench",
)
BODIES = {"json": "body_chat.json", "stream": "body_chat_stream.json"}
TICKET = b"Ticket #48213"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Latency buckets of the c=1 histogram, upper bounds in ms.
BUCKETS = (0.5, 1, 1.5, 2, 3, 5, 10, 20, 50, 100, 200, 500, float("inf"))
GRANIAN_LOOPS = ("uvloop", "rloop", "asyncio")


def tree_pids(root: int) -> list[int]:
    """`root` and its descendants (uvicorn workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parent = int(stat[stat.rindex(")") + 2 :].split()[1])
                children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime, all threads
    return total / CLK_TCK


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, StopIteration):
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            total += int(next(line for line in status if line.startswith("VmRSS:")).split()[1])
    return total / 1024


def wait_http(port: int, path: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"127.0.0.1:{port}{path} did not answer within {seconds} s")


def pinned(argv: list[str], cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if cpu is not None and shutil.which("taskset") else argv


@contextlib.contextmanager
def mock_provider(port: int, cpu: str | None, chunks: int | None = None) -> Iterator[int]:
    """The shared mock provider (yields its pid); `chunks`: content events per streamed answer
    (its default 20)."""
    argv = [sys.executable, str(SHARED_BENCH / "mock_upstream.py"), "--port", str(port)]
    if chunks is not None:
        argv += ["--chunks", str(chunks)]
    with process(pinned(argv, cpu), dict(os.environ)) as proc:
        wait_http(port, "/health")
        yield proc.pid


@contextlib.contextmanager
def gateway(
    source: Path,
    mock_port: int,
    port: int,
    cpu: str | None,
    workers: int,
    env_extra: list[str],
    wrapper: list[str] | None = None,
    server: str = "uvicorn",
) -> Iterator[tuple[int, str]]:
    """`signalvault serve` from checkout `source` in a fresh data dir: (pid, gateway key).
    `wrapper` runs it under another command (valgrind); `server` as `--server` takes it."""
    with tempfile.TemporaryDirectory(prefix="svcost-") as tmp:
        config = Path(tmp) / "signalvault.toml"
        config.write_text(
            f'[server]\nport = {port}\nhost = "127.0.0.1"\nworkers = {workers}\n'
            f'[store]\ndata_dir = "{tmp}/data"\n'
            f'[[providers]]\nname = "openai"\nkind = "openai"\n'
            f'base_url = "http://127.0.0.1:{mock_port}/v1"\nmodels = ["gpt-*"]\n'
            'api_key = "sk-mock"\n'
        )
        env = {**os.environ, "SIGNALVAULT_CONFIG": str(config), "PYTHONPATH": str(source)}
        env.update(item.split("=", 1) for item in env_extra)  # type: ignore[misc]
        command = [sys.executable, "-m", "signalvault"]
        # Run from the temporary directory: `python -m` puts the working directory first on
        # sys.path, where a checkout would shadow the one PYTHONPATH names.
        made = subprocess.run(
            [*command, "keys", "create", "--name", "bench", "--env", "dev", "--json"],
            env=env,
            cwd=tmp,
            capture_output=True,
            text=True,
            check=True,
        )
        key = json.loads(made.stdout)["secret"]
        serve = [*(wrapper or []), *server_command(server, port, workers)]
        with process(pinned(serve, cpu), env, cwd=tmp) as proc:
            wait_http(port, "/readyz", 60.0 if wrapper is None else 600.0)
            yield proc.pid, key


def server_command(server: str, port: int, workers: int) -> list[str]:
    """The command serving the gateway (its settings from SIGNALVAULT_CONFIG) under `server`."""
    if server == "uvicorn":
        return [sys.executable, "-m", "signalvault", "serve"]
    check_granian(server)
    loop, runtime = [*server.split(":"), "", ""][1:3]
    from signalvault.config import ServerSettings  # the gateway's defaults, not copies of them

    defaults = ServerSettings()
    return [
        sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--loop", loop,
        "--runtime-mode", runtime or "auto", "--http", "1", "--no-ws", "--no-access-log",
        "--log-level", "warning",
        "--http1-buffer-size", str(max(8192, defaults.max_header_bytes)),
        "--http1-header-read-timeout", str(round(defaults.header_timeout_seconds * 1000)),
        "signalvault.server:worker_app",
    ]  # fmt: skip


def check_granian(server: str) -> None:
    """Exits with a message unless `server` names granian correctly and granian is installed."""
    name, loop, runtime = [*server.split(":"), "", ""][:3]
    if name != "granian" or loop not in GRANIAN_LOOPS or runtime not in ("", "st", "mt"):
        raise SystemExit(f"--server {server}: expected uvicorn or granian:LOOP[:st|mt]")
    if importlib.util.find_spec("granian") is None or importlib.util.find_spec(loop) is None:
        raise SystemExit(f"--server {server}: pip install -e '.[bench-granian]' first")


_loads = [0]  # load() calls so far in this process


def load(port: int, key: str | None, mode: str, conc: int, requests: int, unique: bool) -> dict:
    """`requests` requests at concurrency `conc` with the shared load generator."""
    _loads[0] += 1
    body = (SHARED_BENCH / BODIES[mode]).read_bytes()
    if unique:
        # loadgen --unique numbers tickets from 1 in every run: without a suffix of its own,
        # each run after the first against the same gateway resent the prompts of the one
        # before, and the scan cache answered them (a warm-up and a measured run overlapped).
        # "Ticket #<n><run, 3 digits>" is unique across runs.
        body = body.replace(TICKET, TICKET + b"%03d" % (_loads[0] % 1000), 1)
    with tempfile.NamedTemporaryFile(suffix=".json") as body_file:
        body_file.write(body)
        body_file.flush()
        argv = [sys.executable, str(SHARED_BENCH / "loadgen.py")]
        argv += [f"http://127.0.0.1:{port}/v1/chat/completions", "--body-file"]
        argv += [body_file.name, "-c", str(conc), "-n", str(requests)]
        argv += ["-d", "600", "--warmup", "0"] + (["--unique"] if unique else [])
        if key is not None:
            argv += ["-H", f"Authorization: Bearer {key}"]
        out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=900).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def cpu_per_request(
    pid: int,
    port: int,
    key: str,
    mode: str,
    conc: int,
    requests: int,
    unique: bool,
    mock_pid: int | None = None,
) -> dict[str, Any]:
    """The gateway's CPU per request over one load run, and the client side's (the mock
    provider `mock_pid` and the load generator, a child of this process that has exited when
    `load` returns): on a machine whose cores they share, it bounds what more workers can do."""
    pids, mock = tree_pids(pid), [mock_pid] if mock_pid is not None else []
    before, started_at = cpu_seconds(pids), time.perf_counter()
    client_before = cpu_seconds(mock) + _children_cpu()
    result = load(port, key, mode, conc, requests, unique)
    after, wall = cpu_seconds(pids), time.perf_counter() - started_at
    client = cpu_seconds(mock) + _children_cpu() - client_before
    served = max(result["ok"], 1)
    return {
        "cpu_us_per_request": round((after - before) / served * 1e6, 1),
        "client_cpu_us_per_request": round(client / served * 1e6, 1),
        "rps": result["rps"],
        "errors": result["error_total"],
        "served": result["ok"],
        "wall_s": round(wall, 2),
        "rss_mib": round(rss_mib(pids), 1),
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def latencies(targets: list[tuple[int, str | None]], count: int, unique: bool) -> list[list[float]]:
    """Per-request latency (ms) of `count` sequential JSON requests to each target (port, key),
    one keep-alive connection each, taking turns request by request: every target sees the
    same moments of a busy machine, so their histograms compare."""
    body = (SHARED_BENCH / BODIES["json"]).read_bytes()
    _loads[0] += 1  # tickets unique across calls, as in load()
    run = _loads[0] % 1000
    connections = []
    for port, key in targets:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        connections.append((http.client.HTTPConnection("127.0.0.1", port, timeout=30), headers))
    times: list[list[float]] = [[] for _ in targets]
    for number in range(count):
        payload = body.replace(TICKET, b"Ticket #%d%03d" % (number, run), 1) if unique else body
        for turn in range(len(targets)):
            index = (number + turn) % len(targets)  # who goes first rotates
            conn, headers = connections[index]
            started_at = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", payload, headers)
            response = conn.getresponse()
            response.read()
            times[index].append((time.perf_counter() - started_at) * 1000)
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status} at c=1")
    for conn, _ in connections:
        conn.close()
    return times


def histogram(times: list[float]) -> list[int]:
    counts = [0] * len(BUCKETS)
    for value in times:
        counts[next(i for i, bound in enumerate(BUCKETS) if value <= bound)] += 1
    return counts


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def print_histogram(rows: dict[str, list[float]]) -> None:
    names = list(rows)
    print("\nc=1 latency histogram (requests per bucket, ms):")
    print(f"  {'<= ms':>7} " + " ".join(f"{n[:14]:>14}" for n in names))
    lower = 0.0
    for i, bound in enumerate(BUCKETS):
        label = f"{bound:g}" if bound != float("inf") else f">{lower:g}"
        counts = [histogram(rows[n])[i] for n in names]
        print(f"  {label:>7} " + " ".join(f"{c:14d}" for c in counts))
        lower = bound
    for pct in (50, 90, 99, 99.9):
        print(f"  p{pct:<6g}" + " ".join(f"{percentile(rows[n], pct):14.2f}" for n in names))
    print(f"  {'max':>7} " + " ".join(f"{max(rows[n]):14.2f}" for n in names))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--source", action="append", type=Path, help="checkout(s) to compare")
    parser.add_argument(
        "--server",
        action="append",
        help="uvicorn (default) or granian:uvloop|rloop|asyncio[:st|mt]; repeat to compare",
    )
    parser.add_argument("--modes", default="json,stream", help="'' for the histogram alone")
    parser.add_argument("--conc", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000, help="requests per measured run")
    parser.add_argument("--rounds", type=int, default=5, help="measured runs per target and mode")
    parser.add_argument("--same", action="store_true", help="one repeated prompt (cache hits)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--histogram", type=int, default=3000, help="c=1 requests (0: none)")
    parser.add_argument("--no-pin", action="store_true", help="let the gateway use both cores")
    parser.add_argument("--env", action="append", default=[], help="NAME=value for the gateway")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument(
        "--mock-chunks", type=int, help="events per streamed answer (the mock's default: 20)"
    )
    args = parser.parse_args()
    sources = [s.resolve() for s in (args.source or [ROOT])]
    servers = args.server or ["uvicorn"]
    for server in servers:
        server_command(server, 0, 1)  # a misspelt server fails before anything starts
    targets = [(source, server) for source in sources for server in servers]
    two_cores = (os.cpu_count() or 1) >= 2 and not args.no_pin
    client_cpu, gateway_cpu = ("0", "1") if two_cores else (None, None)
    unique = not args.same
    modes = [mode for mode in args.modes.split(",") if mode]
    mock_port = free_port()
    results: dict[str, Any] = {
        "runs": [],
        "histogram": {},
        "args": vars(args) | {"source": [str(s) for s in sources], "server": servers},
    }
    with contextlib.ExitStack() as stack:
        mock_pid = stack.enter_context(mock_provider(mock_port, client_cpu, args.mock_chunks))
        # Every target's gateway runs at once (idle but for the one under load): runs of the
        # targets alternate in small turns, so a busy moment of the machine hits all alike.
        gateways = [
            (
                label(source, server, sources, servers),
                port,
                *stack.enter_context(
                    gateway(
                        source,
                        mock_port,
                        port,
                        gateway_cpu,
                        args.workers,
                        args.env,
                        server=server,
                    )
                ),
            )
            for (source, server), port in zip(targets, [free_port() for _ in targets], strict=True)
        ]
        for mode in modes:
            for _, port, _, key in gateways:  # warm-up: caches, pools, first-use imports
                load(port, key, mode, args.conc, max(200, args.requests // 4), unique)
            for round_number in range(args.rounds):
                # Who goes first rotates, so no target always follows the same one.
                shift = round_number % len(gateways)
                for name, port, pid, key in gateways[shift:] + gateways[:shift]:
                    run = cpu_per_request(
                        pid, port, key, mode, args.conc, args.requests, unique, mock_pid
                    )
                    run.update(target=name, mode=mode, round=round_number)
                    results["runs"].append(run)
                    print(json.dumps(run), flush=True)
        if args.histogram:
            ports = [(port, key) for _, port, _, key in gateways] + [(mock_port, None)]
            latencies(ports, 300, unique)  # warm-up
            measured = latencies(ports, args.histogram, unique)
            for (name, *_), times in zip(gateways, measured, strict=False):
                results["histogram"][name] = times
            results["histogram"]["direct"] = measured[-1]
        results["rss_mib"] = {name: rss_mib(tree_pids(pid)) for name, _, pid, _ in gateways}
    print_report(results, [name for name, *_ in gateways], modes, args)
    if args.json:
        args.json.write_text(json.dumps(results, default=str))
    return 0


def label(source: Path, server: str, sources: list[Path], servers: list[str]) -> str:
    """How reports name a target: the checkout, the server, or both when both vary."""
    names = [s.name for s in sources]
    checkout = source.name if names.count(source.name) == 1 else str(source)
    if len(servers) == 1:
        return checkout
    return server if len(sources) == 1 else f"{checkout}/{server}"


def print_report(
    results: dict[str, Any], names: list[str], modes: list[str], args: argparse.Namespace
) -> None:
    print(
        f"\nCPU per request, median of {args.rounds} runs (c={args.conc}, "
        f"{'same' if args.same else 'unique'} prompts, {args.requests} requests each):"
    )
    for name in names:
        for mode in modes:
            runs = [r for r in results["runs"] if r["target"] == name and r["mode"] == mode]
            cpu = sorted(r["cpu_us_per_request"] for r in runs)
            rps = statistics.median(r["rps"] for r in runs)
            client = statistics.median(r["client_cpu_us_per_request"] for r in runs)
            gateway_cpu = statistics.median(cpu)
            print(
                f"  {name:20} {mode:6} {gateway_cpu:7.0f} us/req "
                f"[{cpu[0]:.0f}-{cpu[-1]:.0f}]  {rps:6.0f} req/s  (client {client:.0f} us/req)"
            )
            if args.no_pin and gateway_cpu + client > 0:
                # Two cores run the gateway and its client: at best 2 / (g + c) requests per
                # second, whatever the number of workers (at this CPU per request).
                ceiling = 2e6 / (gateway_cpu + client)
                print(
                    f"  {'':20} {mode:6} the two cores' ceiling: {ceiling:.0f} req/s, "
                    f"{ceiling / rps:.2f}x this run's"
                )
    for name, rss in results["rss_mib"].items():
        print(f"  RSS after the runs: {name} {rss:.0f} MiB")
    if results["histogram"]:
        print_histogram(results["histogram"])


if __name__ == "__main__":
    sys.exit(main())
