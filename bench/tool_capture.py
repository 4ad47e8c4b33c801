"""What capturing tool calls costs: gateway CPU per request for a tool loop against the same
loop without tools, alternating batches in one process.

    python bench/tool_capture.py [--pairs 300] [--rounds 7] [--stream]

Pairs of the two kinds alternate, each pair's audit writes committed before its clock stops.
A "tool" pair is a request offering a tool whose answer asks for it, then a request sending the
result back (recorded: a tool_call and a tool_result event, the run joined by call id). A
"plain" pair carries the same texts, of the same sizes, without tools, and gets answers of the
same sizes. The mock provider runs in a separate process; requests go
to the gateway's ASGI app directly (no client library in the measured process), so process CPU
time (all threads: the event loop and the audit writer) is the gateway's own. Prints the median
CPU microseconds per request of each, and the overhead of capture.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signalvault.app import create_app
from signalvault.config import ProviderSettings, Secret, Settings, StoreSettings

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
ARGUMENTS = '{"city": "Paris", "unit": "celsius", "days": 3}'
# The two kinds must cost the same but for capture, so:
# - no text of either kind may trip a guardrail: "Tool results: Sunny, ..." (the mock's tool loop
#   answer) reads as a person's name to the PII detector, which made every tool pair raise a
#   pii_output alert and open or join an incident (store writes of their own) that plain pairs,
#   whose input was redacted instead, did not;
# - the result must be long enough for the scan cache (scan_cache.MIN_CHARS, 128): the plain
#   pair's counterpart (the result plus the reply marker) is, so it was scanned once and then
#   served from the cache while the tool pair's shorter result was scanned on every pair.
RESULT = (
    "Clear skies, 21C, light wind from the west; no rain expected in the next three days. "
    "Humidity 40%, visibility 10 km, air quality good, pollen count low."
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bodies(stream: bool, nonce: int) -> dict[str, list[bytes]]:
    """The two requests of each kind of pair, text for text of the same sizes, so scanning and
    storing cost the same but for capture. A nonce keeps each question new; the rest is resent
    as in a real conversation (the same for both kinds: see RESULT)."""
    tag = f"{nonce:08d}"
    ask = f"What is the weather in Paris, request {tag}? [[mock:tool=get_weather {ARGUMENTS}]]"
    answer = f"Tool results: {RESULT}"
    # The mock answers a plain question with exactly the text of its reply marker: the same
    # size as the tool call's arguments (first answer) and as the tool loop's answer (second).
    plain_ask = f"What is the weather in Paris, request {tag}? [[mock:reply={ARGUMENTS}]]"
    plain_follow = f"[[mock:reply={answer}]]"
    call = {
        "role": "assistant",
        "tool_calls": [
            {"id": "CALL_ID", "type": "function",
             "function": {"name": "get_weather", "arguments": ARGUMENTS}}
        ],
    }  # fmt: skip
    common: dict[str, Any] = {"model": "gpt-4o-mini", "stream": stream}
    tool_first = {**common, "tools": TOOLS, "messages": [{"role": "user", "content": ask}]}
    tool_second = {
        **common,
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": ask},
            call,
            {"role": "tool", "tool_call_id": "CALL_ID", "content": RESULT},
        ],
    }
    # Same texts, no tools: the arguments as an assistant message, the result as a user one
    # that also carries the reply marker (the tool loop's `tools` list is plain metadata).
    plain_first = {**common, "messages": [{"role": "user", "content": plain_ask}]}
    plain_second = {
        **common,
        "messages": [
            {"role": "user", "content": plain_ask},
            {"role": "assistant", "content": ARGUMENTS},
            {"role": "user", "content": RESULT + plain_follow},
        ],
    }
    return {
        "tool": [orjson.dumps(tool_first), orjson.dumps(tool_second)],
        "plain": [orjson.dumps(plain_first), orjson.dumps(plain_second)],
    }


async def _post(app: Any, key: str, body: bytes) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "query_string": b"",
    }
    sent = False
    status = 0
    chunks: list[bytes] = []
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                done.set()

    await app(scope, receive, send)
    done.set()
    return status, b"".join(chunks)


def _call_id(answer: bytes) -> str:
    if answer.startswith(b"{"):
        return str(orjson.loads(answer)["choices"][0]["message"]["tool_calls"][0]["id"])
    for line in answer.split(b"\n"):
        if b'"id":"call_' in line:
            delta = orjson.loads(line[5:])["choices"][0]["delta"]
            return str(delta["tool_calls"][0]["id"])
    raise SystemExit("the mock answered no tool call")


async def _pair(app: Any, key: str, kind: str, stream: bool, nonce: int) -> None:
    first, second = _bodies(stream, nonce)[kind]
    status, answer = await _post(app, key, first)
    assert status == 200, answer[:200]
    if kind == "tool":
        second = second.replace(b"CALL_ID", _call_id(answer).encode())
    status, answer = await _post(app, key, second)
    assert status == 200, answer[:200]


async def _measure(args: argparse.Namespace, base_url: str) -> None:
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(
            store=StoreSettings(data_dir=Path(data)),
            providers=(
                ProviderSettings(
                    name="openai",
                    kind="openai",
                    base_url=base_url,
                    models=("gpt-*",),
                    api_key=Secret("sk-bench"),
                ),
            ),
        )
        app = create_app(settings)
        await app.startup()
        try:
            assert app.services is not None
            _, key = app.services.keyring.create(name="bench", environment="dev")
            nonce = 0
            for kind in ("tool", "plain"):  # warm caches, connections, the data key
                for _ in range(30):
                    nonce += 1
                    await _pair(app, key, kind, args.stream, nonce)
            samples: dict[str, list[float]] = {"tool": [], "plain": []}
            store = app.services.store
            for _ in range(args.rounds):
                spent = {"tool": 0.0, "plain": 0.0}
                for n in range(args.pairs):
                    # Pair by pair, alternating which kind goes first, each with its writes
                    # committed before the clock stops: load from other work on the machine
                    # falls on both kinds alike.
                    nonce += 1
                    for kind in ("plain", "tool") if n % 2 else ("tool", "plain"):
                        started = time.process_time()
                        await _pair(app, key, kind, args.stream, nonce)
                        store.flush()
                        spent[kind] += time.process_time() - started
                for kind, cpu in spent.items():
                    samples[kind].append(cpu / (2 * args.pairs) * 1e6)
        finally:
            await app.shutdown()
    plain, tool = statistics.median(samples["plain"]), statistics.median(samples["tool"])
    mode = "stream" if args.stream else "json"
    print(f"{mode}: plain {plain:.0f} us/request, tool loop {tool:.0f} us/request, "
          f"capture overhead {100 * (tool - plain) / plain:+.1f}% "
          f"(medians of {args.rounds} rounds x {2 * args.pairs} requests)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    port = _free_port()
    mock = subprocess.Popen(
        [sys.executable, "-m", "signalvault", "mock-provider", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        asyncio.run(_measure(args, f"http://127.0.0.1:{port}/v1"))
    finally:
        mock.terminate()
        mock.wait(timeout=10)


if __name__ == "__main__":
    main()
