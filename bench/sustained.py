"""Sustained load through the gateway on SQLite and on PostgreSQL: `make bench` (not a test).

For each store: start the mock provider and `signalvault serve` as processes, drive them with the
shared closed-loop load generator (../shared/bench/loadgen.py) at concurrency 64 for 60 s (no
warm-up, so every request is counted), stop the gateway gracefully, then count the audit records.
The baseline is the same load sent straight to the mock in the same run; results are ratios to
it and latency added over it. "Lost" = 2xx answers without an `ok` record.

The shared request body is the same every time, so with the scan cache on (the default) every
input text is a cache hit, as a repeated system prompt or conversation history would be; the
`sqlite-nocache` row turns the cache off: the cost when every text is new.

    python bench/sustained.py                        # sqlite, sqlite-nocache, postgres; c=64, 60 s
    python bench/sustained.py --stores sqlite --duration 20
    python bench/sustained.py --database-url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOADGEN = ROOT.parent / "shared" / "bench" / "loadgen.py"
BODY = ROOT.parent / "shared" / "bench" / "body_chat.json"
SV = (sys.executable, "-m", "signalvault")
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
NO_CACHE = "-nocache"  # a store name with this suffix runs with the guardrail scan cache off


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):  # noqa: S310
            return  # (loopback only)
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


@contextlib.contextmanager
def process(
    args: list[str], env: dict[str, str], cwd: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`args` running for the block, then stopped (SIGTERM, then SIGKILL after a minute). Its
    output is discarded: an unread pipe would stall a process that logs once it fills."""
    proc = subprocess.Popen(
        args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def load(url: str, args: argparse.Namespace, headers: list[str]) -> dict[str, Any]:
    command = [sys.executable, str(LOADGEN), url, "--body-file", str(BODY)]
    command += ["-c", str(args.concurrency), "-d", str(args.duration), "--warmup", "0"]
    for header in headers:
        command += ["-H", header]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out.splitlines()[0]))


def pg_schema_url(base: str) -> tuple[str, str]:
    """A fresh schema on the PostgreSQL server, and a URL whose connections use it."""
    import psycopg

    schema = "bench_" + secrets.token_hex(4)
    with psycopg.connect(base.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return schema, f"{base}?options=-csearch_path%3D{schema}"


def drop_schema(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def count_outcomes(env: dict[str, str]) -> dict[str, int]:
    code = (
        "import json; from signalvault.config import load_settings; "
        "from signalvault.store import open_store; from sqlalchemy import text; "
        "s = open_store(load_settings().store); s.open(); "
        "rows = s.engine.connect().execute(text("
        "\"SELECT outcome, count(*) FROM audit_records WHERE kind = 'interaction' "
        'GROUP BY outcome")).all(); '
        "print(json.dumps({o: n for o, n in rows})); s.close()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout))


def run_store(name: str, args: argparse.Namespace, mock_url: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="svbench-") as tmp:
        port = free_port()
        config = Path(tmp) / "signalvault.toml"
        config.write_text(
            f'[server]\nport = {port}\n[store]\ndata_dir = "{tmp}/data"\n'
            f'[[providers]]\nname = "mock"\nkind = "openai"\nbase_url = "{mock_url}"\n'
            'models = ["*"]\napi_key = "sk-bench-provider"\n'
        )
        env = {**os.environ, "SIGNALVAULT_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
        if name.endswith(NO_CACHE):
            env["SIGNALVAULT_GUARDRAILS_SCAN_CACHE_ENTRIES"] = "0"
        schema = None
        if name.removesuffix(NO_CACHE) == "postgres":
            schema, env["SIGNALVAULT_DATABASE_URL"] = pg_schema_url(args.database_url)
        try:
            created = subprocess.run(
                [*SV, "keys", "create", "--name", "bench", "--env", "dev", "--json"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            key = json.loads(created.stdout)["secret"]
            serve = [*SV, "serve"]
            with process(serve, env) as gateway:
                wait_http(f"http://127.0.0.1:{port}/readyz")
                result = load(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    args,
                    [f"Authorization: Bearer {key}"],
                )
                gateway.send_signal(signal.SIGTERM)
                gateway.wait(timeout=60)
            result["records"] = count_outcomes(env)
        finally:
            if schema is not None:
                drop_schema(args.database_url, schema)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--stores", default="sqlite,sqlite-nocache,postgres")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--database-url", default=DEFAULT_PG)
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    args = parser.parse_args()
    if not LOADGEN.exists():
        print(f"no load generator at {LOADGEN} (../shared/bench)", file=sys.stderr)
        return 2
    mock_port = free_port()
    mock = [*SV, "mock-provider", "--port", str(mock_port)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results: dict[str, Any] = {}
    with process(mock, env):
        mock_url = f"http://127.0.0.1:{mock_port}/v1"
        wait_http(f"http://127.0.0.1:{mock_port}/stats")
        direct_auth = ["Authorization: Bearer sk-bench-provider"]
        results["direct"] = load(f"{mock_url}/chat/completions", args, direct_auth)
        for name in args.stores.split(","):
            results[name] = run_store(name, args, mock_url)
    if args.json:
        print(json.dumps(results, indent=2))
    direct = results["direct"]
    print(f"c={args.concurrency}, {args.duration:g} s each; direct: {direct['rps']} req/s")
    print("store           req/s  ratio  p50+ms  p99+ms  errors  2xx     ok-records  lost  rec/s")
    for name in args.stores.split(","):
        r = results[name]
        ok_2xx = sum(n for status, n in r["status"].items() if status.startswith("2"))
        ok_records = r["records"].get("ok", 0)
        total_records = sum(r["records"].values())
        print(
            f"{name:14} {r['rps']:7.0f} {r['rps'] / direct['rps']:6.3f} "
            f"{r['latency_ms']['p50'] - direct['latency_ms']['p50']:7.2f} "
            f"{r['latency_ms']['p99'] - direct['latency_ms']['p99']:7.2f} "
            f"{r['error_total']:7d} {ok_2xx:7d} {ok_records:11d} {max(0, ok_2xx - ok_records):5d} "
            f"{total_records / r['duration_s']:6.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
