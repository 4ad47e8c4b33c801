"""What the upstream HTTP client costs per provider call, against the least an HTTP/1.1 call can.

    python bench/upstream_client.py [--calls 4000]

Starts the shared mock provider (pinned to CPU 0) and, on CPU 1, posts the bench chat body to it
one call at a time: with aiohttp configured as the gateway configures its provider session
(`gateway.providers`: no cookie jar, no Accept-Encoding, the provider's timeouts per call), and
with a bare keep-alive exchange on asyncio streams (request written whole, response read by its
Content-Length; no pooling, timeouts or error handling: a floor, not a client). Prints CPU per
call of this process for each (medians of 3 rounds) under uvloop, as the gateway runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cost import SHARED_BENCH, mock_provider
from sustained import free_port

BODY = (SHARED_BENCH / "body_chat.json").read_bytes()
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-mock"}


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def per_call(call: Callable[[], Awaitable[None]], calls: int) -> float:
    for _ in range(300):  # warm: connection open, caches filled
        await call()
    started = cpu()
    for _ in range(calls):
        await call()
    return (cpu() - started) / calls


async def measure(port: int, calls: int) -> dict[str, list[float]]:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    timeout = aiohttp.ClientTimeout(total=600, connect=10, sock_connect=10, sock_read=120)
    results: dict[str, list[float]] = {"aiohttp (as the gateway)": [], "bare HTTP/1.1": []}
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60),
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
    request = (head + "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())).encode()
    request += b"content-length: %d\r\n\r\n" % len(BODY) + BODY

    async def with_aiohttp() -> None:
        response = await session.post(url, data=BODY, headers=HEADERS, timeout=timeout)
        await response.read()
        response.release()

    async def bare() -> None:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        at = head.lower().index(b"content-length:") + 15
        await reader.readexactly(int(head[at : head.index(b"\r\n", at)]))

    try:
        for _ in range(3):
            results["aiohttp (as the gateway)"].append(await per_call(with_aiohttp, calls))
            results["bare HTTP/1.1"].append(await per_call(bare, calls))
    finally:
        writer.close()
        await session.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=4000)
    args = parser.parse_args()
    port = free_port()
    with mock_provider(port, "0"):
        os.sched_setaffinity(0, {1})
        results = uvloop.run(measure(port, args.calls))
    for name, values in results.items():
        print(f"{name:26} {statistics.median(values) * 1e6:6.0f} us of CPU per call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
