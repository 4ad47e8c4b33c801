"""What the provider client costs per call, against aiohttp and the least an HTTP/1.1 call can.

    python bench/upstream_client.py [--calls 4000] [--instructions]

Starts the shared mock provider (pinned to CPU 0) and, on CPU 1, posts the bench chat body to it
one call at a time, reading each answer whole, with three clients:
- the gateway's own (`gateway.upstream.http1`), as `Upstream` calls it;
- aiohttp, configured as the gateway configured it until it had its own client (no cookie jar,
  no Accept-Encoding, the provider's timeouts per call);
- a bare keep-alive exchange on asyncio streams (request written whole, response read by its
  Content-Length; no pooling, timeouts or error handling: a floor, not a client).
Prints CPU per call of this process for each (medians of 3 interleaved rounds) under uvloop, as
the gateway runs. `--instructions` counts instead, repeatable on a busy machine: each client runs
in its own process under callgrind, once with 200 calls and once with 1,200, and the difference
is divided by 1,000 (start-up and warm-up cancel out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cost import ROOT, SHARED_BENCH, mock_provider
from sustained import free_port

sys.path.insert(0, str(ROOT))

from signalvault.gateway.upstream.http1 import Client, Timeouts

BODY = (SHARED_BENCH / "body_chat.json").read_bytes()
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-mock"}
CLIENTS = ("signalvault http1", "aiohttp", "bare HTTP/1.1")
Call = Callable[[], Awaitable[None]]


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.asynccontextmanager
async def clients(port: int) -> AsyncIterator[dict[str, Call]]:
    """One call of each client, on connections of its own."""
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    timeouts = Timeouts(total=600, connect=10, first_byte=300, idle=120)
    ours = Client()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60),
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    aiohttp_timeout = aiohttp.ClientTimeout(total=600, connect=10, sock_connect=10, sock_read=120)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
    request = (head + "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())).encode()
    request += b"content-length: %d\r\n\r\n" % len(BODY) + BODY

    async def with_ours() -> None:
        response = await ours.post(url, BODY, dict(HEADERS), timeouts)
        while await response.read(1 << 16):
            pass
        response.release()

    async def with_aiohttp() -> None:
        response = await session.post(url, data=BODY, headers=HEADERS, timeout=aiohttp_timeout)
        await response.read()
        response.release()

    async def bare() -> None:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        at = head.lower().index(b"content-length:") + 15
        await reader.readexactly(int(head[at : head.index(b"\r\n", at)]))

    try:
        yield dict(zip(CLIENTS, (with_ours, with_aiohttp, bare), strict=True))
    finally:
        writer.close()
        await session.close()
        await ours.close()


async def per_call(call: Call, calls: int) -> float:
    for _ in range(300):  # warm: connection open, caches filled
        await call()
    started = cpu()
    for _ in range(calls):
        await call()
    return (cpu() - started) / calls


async def measure(port: int, calls: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {name: [] for name in CLIENTS}
    async with clients(port) as calls_of:
        for _ in range(3):
            for name, call in calls_of.items():
                results[name].append(await per_call(call, calls))
    return results


async def only(port: int, name: str, calls: int) -> None:
    async with clients(port) as calls_of:
        for _ in range(calls):
            await calls_of[name]()


def instructions(port: int, name: str) -> int:
    """Instructions per call of one client: two runs under callgrind, 1,000 calls apart."""
    counts = []
    with tempfile.TemporaryDirectory() as tmp:
        for calls in (200, 1200):
            argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out"]
            argv += [sys.executable, __file__, "--only", name, "--port", str(port)]
            argv += ["--calls", str(calls)]
            done = subprocess.run(argv, capture_output=True, text=True, check=True)
            counts.append(int(re.findall(r"Collected : (\d+)", done.stderr)[-1]))
    return (counts[1] - counts[0]) // 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--instructions", action="store_true", help="count under callgrind")
    parser.add_argument("--only", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only is not None:  # one client's run, under callgrind
        uvloop.run(only(args.port, args.only, args.calls))
        return 0
    port = free_port()
    with mock_provider(port, "0"):
        os.sched_setaffinity(0, {1})
        if args.instructions:
            for name in CLIENTS:
                print(f"{name:18} {instructions(port, name) / 1000:6.1f} K instructions per call")
            return 0
        results = uvloop.run(measure(port, args.calls))
    for name, values in results.items():
        print(f"{name:18} {statistics.median(values) * 1e6:6.0f} us of CPU per call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
