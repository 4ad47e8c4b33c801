"""Requests lost to reloads: `serve --workers 2` under load, SIGHUP after SIGHUP.

    python bench/reload.py                       # 10 reloads, 4 clients, new connections
    python bench/reload.py --keep-alive          # clients reusing kept-alive connections
    python bench/reload.py --source /tmp/base    # another checkout (same virtualenv)

Starts `signalvault serve --workers 2` (a provider that is never called: the clients ask for
/healthz) in a fresh data directory; `--clients` threads send GET /healthz back to back, on a
new connection per request or (`--keep-alive`) on one kept-alive connection each, reconnecting
after an error or `Connection: close`. Every reload waits until both replacement workers serve,
then a second more. Prints the requests answered 200 and every failure by kind: a reload that
loses nothing prints none. Not a test: tests/e2e/test_serve.py asserts the same with one reload.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sustained import free_port

ROOT = Path(__file__).resolve().parents[1]
STARTED = "Application startup complete."


def knock(port: int, keep_alive: bool, stop: threading.Event, outcomes: Counter[str]) -> None:
    connection: http.client.HTTPConnection | None = None
    while not stop.is_set():
        try:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            outcomes[str(response.status)] += 1
            if not keep_alive or response.getheader("connection", "").lower() == "close":
                connection.close()
                connection = None
        except (OSError, http.client.HTTPException) as exc:
            outcomes[type(exc).__name__] += 1
            if connection is not None:
                connection.close()
            connection = None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout to run")
    parser.add_argument("--reloads", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--keep-alive", action="store_true", help="reuse connections")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="svreload-") as tmp:
        config = Path(tmp) / "signalvault.toml"
        config.write_text(
            f'[server]\nport = {port}\nhost = "127.0.0.1"\nworkers = 2\n'
            f'[store]\ndata_dir = "{tmp}/data"\n'
            '[[providers]]\nname = "openai"\nkind = "openai"\n'
            'base_url = "http://127.0.0.1:9/v1"\nmodels = ["gpt-*"]\napi_key = "sk-unused"\n'
        )
        env = {**os.environ, "SIGNALVAULT_CONFIG": str(config), "PYTHONPATH": str(args.source)}
        log = Path(tmp) / "serve.log"
        with log.open("w") as out:
            serve = subprocess.Popen(
                [sys.executable, "-m", "signalvault", "serve"], env=env, cwd=tmp, stdout=out,
                stderr=out,
            )  # fmt: skip
        try:
            wait_for(log, serve, 2)
            stop, outcomes = threading.Event(), Counter[str]()
            clients = [
                threading.Thread(target=knock, args=(port, args.keep_alive, stop, outcomes))
                for _ in range(args.clients)
            ]
            for client in clients:
                client.start()
            for _ in range(args.reloads):
                started = log.read_text().count(STARTED)
                serve.send_signal(signal.SIGHUP)
                wait_for(log, serve, started + 2)
                time.sleep(1.0)
            stop.set()
            for client in clients:
                client.join()
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(60)
    answered = outcomes.pop("200", 0)
    kind = "kept-alive connections" if args.keep_alive else "a new connection per request"
    print(f"{args.reloads} reloads, {args.clients} clients on {kind}: {answered} answered 200")
    print("failed: " + (", ".join(f"{k} {n}" for k, n in outcomes.most_common()) or "none"))
    return 0


def wait_for(log: Path, serve: subprocess.Popen[bytes], started: int) -> None:
    """Until the log shows `started` workers serving since `serve` began."""
    deadline = time.monotonic() + 120
    while log.read_text().count(STARTED) < started:
        if serve.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"serve did not start its workers:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
