"""The ASGI server's own cost per request, without the gateway: uvicorn as `serve` runs it
(uvloop, httptools behind GuardedHttpTools) against granian, on a trivial app.

The app reads the request body and answers a 430-byte JSON body, or for a request with
`"stream": true` 22 SSE events, one `http.response.body` message each (the mock provider's
answer to the shared stream body has about as many, and the gateway relays them as they come).
Each server is pinned to CPU 1 (the load generator floats; `--no-pin`: both do), 16
connections; every server runs at once and the rounds take turns. Per request it reports the
server's CPU time (user+system of its process tree, /proc) and its context switches (voluntary
and involuntary, every thread): granian parses HTTP on a Rust thread and hands each request
and each `send` to the Python event loop's thread, which shows up there.

    python bench/asgi_server.py                      # uvicorn, granian:uvloop, granian:uvloop:st
    python bench/asgi_server.py --requests 50000 --rounds 7 --server uvicorn --server granian:rloop

Servers are named as in `bench/cost.py --server`; granian needs
`pip install -e '.[bench-granian]'`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cost import check_granian, cpu_seconds, load, pinned, tree_pids, wait_http
from sustained import free_port, process

HERE = Path(__file__).resolve().parent
ANSWER = b'{"id":"x","choices":[{"message":{"content":"' + b"tok " * 95 + b'"}}]}'
EVENT = b'data: {"choices":[{"delta":{"content":"tok "}}]}\n\n'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The trivial ASGI app both servers run."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if b'"stream":true' not in body and b'"stream": true' not in body:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": ANSWER})
        return
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for _ in range(21):
        await send({"type": "http.response.body", "body": EVENT, "more_body": True})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


def serve_uvicorn(port: int) -> None:
    """`app` under uvicorn with the options `signalvault serve` passes it."""
    import uvicorn

    from signalvault.config import ServerSettings
    from signalvault.server import http_protocol

    settings = ServerSettings()
    uvicorn.run(
        "asgi_server:app",
        port=port,
        loop="uvloop",
        http=http_protocol(settings),
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_keep_alive=settings.keep_alive_seconds,
    )


def command(server: str, port: int) -> list[str]:
    """The command serving `app` under `server` (named as in `bench/cost.py --server`)."""
    if server == "uvicorn":
        return [sys.executable, str(HERE / "asgi_server.py"), "--serve-uvicorn", str(port)]
    check_granian(server)
    loop, runtime = [*server.split(":"), "", ""][1:3]
    return [
        sys.executable, "-m", "granian", "--interface", "asgi", "--port", str(port),
        "--loop", loop, "--runtime-mode", runtime or "auto", "--http", "1", "--no-ws",
        "--no-access-log", "--log-level", "warning", "asgi_server:app",
    ]  # fmt: skip


def switches(pids: list[int]) -> int:
    """Context switches so far of every thread of `pids`."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    for line in (task / "status").read_text().splitlines():
                        if "ctxt_switches:" in line:  # voluntary and nonvoluntary
                            total += int(line.split()[1])
    return total


@contextlib.contextmanager
def running(server: str, port: int, cpu: str | None) -> Iterator[int]:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    with process(pinned(command(server, port), cpu), env, cwd=str(HERE)) as proc:
        wait_http(port, "/")
        yield proc.pid


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--server", action="append", help="repeat; default: three of them")
    parser.add_argument("--requests", type=int, default=20_000, help="requests per measured run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--conc", type=int, default=16)
    parser.add_argument("--no-pin", action="store_true", help="let the servers use both cores")
    parser.add_argument("--serve-uvicorn", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_uvicorn:
        serve_uvicorn(args.serve_uvicorn)
        return 0
    servers = args.server or ["uvicorn", "granian:uvloop", "granian:uvloop:st"]
    for server in servers:
        command(server, 0)  # a misspelt server fails before anything starts
    server_cpu = "1" if (os.cpu_count() or 1) >= 2 and not args.no_pin else None
    runs: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    with contextlib.ExitStack() as stack:
        ports = [free_port() for _ in servers]
        targets = [
            (server, port, stack.enter_context(running(server, port, server_cpu)))
            for server, port in zip(servers, ports, strict=True)
        ]
        for mode in ("json", "stream"):
            for _, port, _ in targets:  # warm-up
                load(port, None, mode, args.conc, 2000, False)
            for round_number in range(args.rounds):
                shift = round_number % len(targets)
                for server, port, pid in targets[shift:] + targets[:shift]:
                    pids = tree_pids(pid)
                    cpu, switched = cpu_seconds(pids), switches(pids)
                    result = load(port, None, mode, args.conc, args.requests, False)
                    served = max(result["ok"], 1)
                    run = (
                        (cpu_seconds(pids) - cpu) / served * 1e6,
                        (switches(pids) - switched) / served,
                        result["rps"],
                    )
                    runs.setdefault((server, mode), []).append(run)
                    print(
                        f"{server:20} {mode:6} {run[0]:6.1f} us/req {run[1]:5.1f} cs/req",
                        flush=True,
                    )
    print(f"\nServer cost per request, median of {args.rounds} runs (c={args.conc}):")
    for (server, mode), found in runs.items():
        cpu_us = sorted(run[0] for run in found)
        print(
            f"  {server:20} {mode:6} {statistics.median(cpu_us):6.1f} us/req "
            f"[{cpu_us[0]:.1f}-{cpu_us[-1]:.1f}]  "
            f"{statistics.median(run[1] for run in found):5.1f} context switches/req  "
            f"{statistics.median(run[2] for run in found):6.0f} req/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
