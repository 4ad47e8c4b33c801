"""What capturing tool calls costs: gateway CPU per request for a tool loop against the same
loop without tools, alternating batches in one process.

    python bench/tool_capture.py [--pairs 300] [--rounds 7] [--stream]
    python bench/tool_capture.py --instructions [--pairs 40] [--rounds 3] [--source DIR]
    python bench/tool_capture.py --instructions --context 1000   # a 1 kB question, as elsewhere
    python bench/tool_capture.py --instructions --concurrency 8  # commits shared, as under load
    python bench/tool_capture.py --instructions --seeds 1,2,3    # one run per hash seed

Pairs of the two kinds alternate, each pair's audit writes committed before its clock stops.
A "tool" pair is a request offering a tool whose answer asks for it, then a request sending the
result back (recorded: a tool_call and a tool_result event, the run joined by call id). A
"plain" pair carries the same texts, of the same sizes, without tools, and gets answers of the
same sizes. The mock provider runs in a separate process; requests go
to the gateway's ASGI app directly (no client library in the measured process), so process CPU
time (all threads: the event loop and the audit writer) is the gateway's own. The event loop is
uvloop's, as under `signalvault serve`: asyncio's pure-Python loop cost ~0.25 M more instructions
per request, which made every request dearer and the overhead of capture look ~0.3 point smaller.
Prints the median CPU microseconds per request of each, and the overhead of capture.

CPU time moves by a few percent between runs on a shared machine, as much as the gap measured.
`--instructions` counts instructions instead (deterministic to well under 1%): the measuring
process runs under valgrind's callgrind with instrumentation off through startup and warm-up,
then, round by round, switches it on (`callgrind_control`) for `--pairs` pairs of one kind,
dumps, and counts apart the seal of the records they wrote and the WAL checkpoint of their
pages ("with seal": part of what storing them costs, off the request path). Every thread of the
process counts (the event loop, the commit thread, the sealer). The periodic sealer and the WAL
checkpointer, which run on clocks, are held off so that their work falls only where it is asked
for, and each round starts with a garbage collection, so that a round pays for the collections
its own allocations call for and not for those left over from another. Valgrind runs it ~50x
slower: 40
pairs x 3 rounds take about 3 minutes. `--source DIR` measures another checkout's `signalvault`
package (a baseline worktree) with this script; `--keep DIR` keeps the dumps (callgrind.out.N:
per kind and round, the requests, then their seal) for `callgrind_annotate`.

Separate runs of the same code differ by more than their rounds do (up to ~0.7 point of
overhead): Python's hash seed, random per process, changes dict and set layouts. Two runs with
the same PYTHONHASHSEED agreed within 0.05 point (+5.50%, +5.55%). `--seeds 1,2,3` runs once per
seed and prints the medians, which is what to compare between two versions of the code.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop
from sustained import free_port

ROOT = Path(__file__).resolve().parents[1]

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


# Context sent before the question in both kinds (`--context BYTES`): the default texts are a
# few dozen bytes, where per-record costs weigh most; the overhead benches use 1 kB chats.
FILLER = (
    "We are planning an outdoor event next week and still have to settle the tents, the seating "
    "and the schedule for setting everything up, and the forecast matters for all of it. "
)
_context = ""


def _bodies(stream: bool, nonce: int) -> dict[str, list[bytes]]:
    """The two requests of each kind of pair, text for text of the same sizes, so scanning and
    storing cost the same but for capture. A nonce keeps each question new; the rest is resent
    as in a real conversation (the same for both kinds: see RESULT)."""
    tag = f"{nonce:08d}"
    ask = f"{_context}What is the weather in Paris, request {tag}? "
    ask += f"[[mock:tool=get_weather {ARGUMENTS}]]"
    answer = f"Tool results: {RESULT}"
    # The mock answers a plain question with exactly the text of its reply marker: the same
    # size as the tool call's arguments (first answer) and as the tool loop's answer (second).
    plain_ask = f"{_context}What is the weather in Paris, request {tag}? [[mock:reply={ARGUMENTS}]]"
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
    """The tool call's id in the first answer of a tool pair ("" in a plain pair's): both kinds
    parse their answer, so that the client's own work costs them the same."""
    if answer.startswith(b"{"):
        message = orjson.loads(answer)["choices"][0]["message"]
        return str(message["tool_calls"][0]["id"]) if "tool_calls" in message else ""
    found = ""
    for line in answer.split(b"\n"):  # every event, in both kinds
        if line.startswith(b"data: {"):
            delta = orjson.loads(line[6:])["choices"][0]["delta"]
            if "tool_calls" in delta and "id" in delta["tool_calls"][0]:
                found = str(delta["tool_calls"][0]["id"])
    return found


async def _pair(app: Any, key: str, kind: str, stream: bool, nonce: int) -> None:
    first, second = _bodies(stream, nonce)[kind]
    status, answer = await _post(app, key, first)
    assert status == 200, answer[:200]
    call_id = _call_id(answer)
    if kind == "tool" and not call_id:
        raise SystemExit("the mock answered no tool call")
    second = second.replace(b"CALL_ID", call_id.encode())  # (no such text in a plain pair)
    status, answer = await _post(app, key, second)
    assert status == 200, answer[:200]


def _checkpoint(path: Path) -> None:
    """What the store's WAL checkpointer does on its clock, once."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        connection.close()


class Callgrind:
    """Switches callgrind's instrumentation of this very process on and off, and reads its
    dumps (the process runs under `valgrind --tool=callgrind --instr-atstart=no`)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.pid = str(os.getpid())
        self.dumps: list[str] = []

    def _control(self, *options: str) -> None:
        # vgdb reaches the process while it waits for this child (a blocked process is invoked).
        subprocess.run(["callgrind_control", *options, self.pid], check=True, capture_output=True)

    def start(self) -> None:
        self._control("-i", "on")

    def stop(self) -> int:
        """Switch off, dump, and return the instructions counted since the last dump (the dump's
        path is kept in `dumps`)."""
        self._control("-i", "off")
        before = set(self.out.parent.glob(self.out.name + ".*"))
        self._control("-d")
        (dump,) = set(self.out.parent.glob(self.out.name + ".*")) - before
        self.dumps.append(str(dump))
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):  # (its `summary:` line reads 0 in a dump on demand)
                return int(line.split()[1])
        raise SystemExit(f"no totals in {dump}")


def _control_cost(callgrind: Callgrind) -> float:
    """Instructions a count takes in for switching callgrind on and off: this process runs the
    two `callgrind_control` calls (a subprocess each), and what follows the first and precedes
    the second is counted (~0.4 M, the same whether the process then idles 0 or 4 seconds: no
    work of the gateway runs on a clock while it is idle). Median of three."""
    costs = []
    for _ in range(3):
        callgrind.start()
        costs.append(callgrind.stop())
    return statistics.median(costs)


def _sha256_instructions(dump: str) -> int:
    """Instructions of a callgrind dump spent in OpenSSL's SHA-256 (hashing and finishing)."""
    found = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", dump],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    total = 0
    for line in found.splitlines():
        if line.rstrip().endswith("libcrypto.so.3]") and (
            ":SHA256_Update " in line or ":SHA256_Final " in line
        ):
            total += int(line.split()[0].replace(",", ""))
    return total


def _sha256_speedup() -> float:
    """How much faster this CPU hashes SHA-256 with its SHA extensions than OpenSSL's software
    path, the one it takes under valgrind (which does not emulate them): 1.0 without them."""
    probe = (
        "import hashlib, time; data = bytes(4096); start = time.process_time()\n"
        "for _ in range(20000): hashlib.sha256(data).digest()\n"
        "print(time.process_time() - start)"
    )

    def seconds(env: dict[str, str]) -> float:
        found = subprocess.run(
            [sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env
        )
        return float(found.stdout)

    # OPENSSL_ia32cap's second word masks CPUID leaf 7 bits; bit 29 of EBX is SHA.
    software = min(seconds({**os.environ, "OPENSSL_ia32cap": ":~0x20000000"}) for _ in range(3))
    native = min(seconds(dict(os.environ)) for _ in range(3))
    return software / native


async def _measure(args: argparse.Namespace, base_url: str) -> None:
    from signalvault.app import create_app
    from signalvault.config import (
        AuditSettings,
        ProviderSettings,
        Secret,
        Settings,
        StoreSettings,
    )
    from signalvault.store.sqlite import SqliteStore

    callgrind = Callgrind(args.in_callgrind) if args.in_callgrind else None
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(
            store=StoreSettings(data_dir=Path(data)),
            # Under callgrind seals run where the rounds ask for them, not on a clock.
            audit=AuditSettings(seal_interval_seconds=1e9) if callgrind else AuditSettings(),
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
            # Warm caches, the data key and the upstream connections: as many pairs at once as
            # measured, or the first measured round opens the pool's other connections.
            for kind in ("tool", "plain"):
                for _ in range(30):
                    numbers = range(nonce + 1, nonce + 1 + args.concurrency)
                    nonce += args.concurrency
                    await asyncio.gather(*(_pair(app, key, kind, args.stream, n) for n in numbers))
            samples: dict[str, list[float]] = {"tool": [], "plain": []}
            store = app.services.store
            if callgrind is not None:
                sealer = app.services.sealer
                await asyncio.to_thread(sealer.seal)
                # The WAL checkpointer runs on a clock: under callgrind's slowdown how often it ran
                # in a round, and so what it copied, varied with the machine's load. It is held
                # off; each kind's round is checkpointed after it, counted with its seal.
                assert isinstance(store, SqliteStore)
                checkpointer = store.checkpointer
                checkpointer.stop()
                checkpoint = functools.partial(_checkpoint, store.path)
                await asyncio.to_thread(checkpoint)
                gc.collect()
                gc.freeze()  # as `serve` does after startup
                # Each count includes the two control calls' own work (fixed, ~5k instructions
                # per request of a round): measured apart and taken off every count.
                control = _control_cost(callgrind)
                seals: dict[str, list[float]] = {"tool": [], "plain": []}
                dumps: dict[str, dict[str, list[str]]] = {
                    part: {"tool": [], "plain": []} for part in ("requests", "seals")
                }
                for number in range(args.rounds):
                    for kind in ("plain", "tool") if number % 2 else ("tool", "plain"):
                        # The same garbage-collector state at each round's start: an older
                        # generation's collection left over from the round before cost whichever
                        # kind it fell in up to ~60k instructions per request.
                        gc.collect()
                        callgrind.start()
                        for _ in range(0, args.pairs, args.concurrency):
                            # `--concurrency` pairs at once: their writes share commits, as
                            # under load (group commit), instead of one commit per pair.
                            numbers = range(nonce + 1, nonce + 1 + args.concurrency)
                            nonce += args.concurrency
                            pairs = (_pair(app, key, kind, args.stream, n) for n in numbers)
                            await asyncio.gather(*pairs)
                            store.flush()
                        samples[kind].append((callgrind.stop() - control) / (2 * args.pairs))
                        dumps["requests"][kind].append(callgrind.dumps[-1])
                        callgrind.start()
                        await asyncio.to_thread(sealer.seal)
                        await asyncio.to_thread(checkpoint)
                        seals[kind].append((callgrind.stop() - control) / (2 * args.pairs))
                        dumps["seals"][kind].append(callgrind.dumps[-1])
                found = {"requests": samples, "seals": seals, "dumps": dumps, "control": control}
                print(orjson.dumps(found).decode(), flush=True)
                checkpointer.start()
                return
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


def _count(args: argparse.Namespace, base_url: str) -> None:
    """Instructions per request, once per hash seed (`--seeds`), then their medians."""
    speedup = _sha256_speedup()
    found = [_count_once(args, base_url, seed, speedup) for seed in args.seeds]
    if len(found) > 1:
        print(f"  {len(found)} seeds, capture overhead per seed:")
        for name in found[0]:
            overheads = " ".join(f"{100 * (t - p) / p:+.2f}%" for p, t in (f[name] for f in found))
            print(f"    {name:21} {overheads}")


def _count_once(
    args: argparse.Namespace, base_url: str, seed: str | None, speedup: float
) -> dict[str, tuple[float, float]]:
    """Run the measuring process under callgrind, print instructions per request, and return
    the medians (plain, tool) of each way of counting. `seed`: its PYTHONHASHSEED (None:
    random). `speedup`: of this CPU's SHA-256 over the software path valgrind runs."""
    env = {**os.environ} if seed is None else {**os.environ, "PYTHONHASHSEED": seed}
    with tempfile.TemporaryDirectory(prefix="svcg-") as tmp:
        if args.keep:
            tmp = str((args.keep / seed if seed is not None else args.keep).resolve())
            Path(tmp).mkdir(parents=True, exist_ok=True)
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={tmp}/callgrind.out",
            sys.executable,
            str(Path(__file__).resolve()),
            f"--pairs={args.pairs}",
            f"--rounds={args.rounds}",
            f"--in-callgrind={tmp}/callgrind.out",
            f"--base-url={base_url}",
            *(["--stream"] if args.stream else []),
            *([f"--source={args.source}"] if args.source else []),
            f"--context={args.context}",
            f"--concurrency={args.concurrency}",
        ]
        found = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
        found = orjson.loads(found.stdout.strip().splitlines()[-1])
        per_request = 2 * args.pairs
        sha = {
            part: {k: [_sha256_instructions(d) / per_request for d in v] for k, v in kinds.items()}
            for part, kinds in found["dumps"].items()
        }
    requests, seals = found["requests"], found["seals"]
    mode = "stream" if args.stream else "json"
    print(f"{mode}: instructions per request, medians of {args.rounds} rounds x "
          f"{2 * args.pairs} requests of each kind, {args.context} bytes of context, "
          f"{args.concurrency} pair(s) at once, hash seed {seed or 'random'} "
          f"(source {args.source or ROOT})")  # fmt: skip
    both = {k: [r + s for r, s in zip(requests[k], seals[k], strict=True)] for k in requests}
    # Valgrind hides the CPU's SHA extensions, so OpenSSL hashes in software under it: the
    # seal's leaf hashes count several times what they cost natively. Scaled by the speed-up
    # measured on this machine, they count as their native time would.
    native = {
        k: [
            total - (1 - 1 / speedup) * (sha["requests"][k][i] + sha["seals"][k][i])
            for i, total in enumerate(both[k])
        ]
        for k in both
    }
    medians = {}
    for name, samples in (
        ("requests", requests),
        ("with seal", both),
        ("with seal, native SHA", native),
    ):
        plain, tool = statistics.median(samples["plain"]), statistics.median(samples["tool"])
        medians[name] = (plain, tool)
        spread = max(max(v) / min(v) - 1 for v in samples.values())
        print(f"  {name:21}  plain {plain / 1e6:.3f} M, tool loop {tool / 1e6:.3f} M, "
              f"capture overhead {100 * (tool - plain) / plain:+.2f}% "
              f"(rounds within {100 * spread:.2f}%)")  # fmt: skip
    print(f"  switching callgrind on and off: {found['control'] / 1e3:.0f}k instructions, "
          "taken off each count")  # fmt: skip
    print("  seal per request: plain", " ".join(f"{v / 1e3:.0f}k" for v in seals["plain"]),
          "tool", " ".join(f"{v / 1e3:.0f}k" for v in seals["tool"]))  # fmt: skip
    print(f"  SHA-256 per request (requests + seal): plain "
          f"{statistics.median(sha['requests']['plain']) / 1e3:.0f}k + "
          f"{statistics.median(sha['seals']['plain']) / 1e3:.0f}k, tool "
          f"{statistics.median(sha['requests']['tool']) / 1e3:.0f}k + "
          f"{statistics.median(sha['seals']['tool']) / 1e3:.0f}k; this CPU hashes "
          f"{speedup:.1f}x faster than under valgrind")  # fmt: skip
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=None, help="300; 40 with --instructions")
    parser.add_argument("--rounds", type=int, default=None, help="7; 3 with --instructions")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--instructions", action="store_true", help="count under callgrind")
    parser.add_argument("--source", type=Path, help="the checkout whose signalvault to measure")
    parser.add_argument("--keep", type=Path, help="keep the callgrind dumps in this directory")
    parser.add_argument("--context", type=int, default=0, help="bytes of context per question")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="pairs at once (--instructions; 40 %% N == 0)"
    )
    parser.add_argument(
        "--seeds",
        type=lambda text: text.split(","),
        default=[None],
        help="PYTHONHASHSEED values, one run each, e.g. 1,2,3 (--instructions; default random)",
    )
    parser.add_argument("--in-callgrind", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global _context
    _context = (FILLER * (args.context // len(FILLER) + 1))[: args.context]
    counting = args.instructions or args.in_callgrind
    args.pairs = args.pairs or (40 if counting else 300)
    args.rounds = args.rounds or (3 if counting else 7)
    sys.path.insert(0, str((args.source or ROOT).resolve()))
    if args.in_callgrind:
        uvloop.run(_measure(args, args.base_url))
        return
    port = free_port()
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
        if args.instructions:
            _count(args, f"http://127.0.0.1:{port}/v1")
        else:
            uvloop.run(_measure(args, f"http://127.0.0.1:{port}/v1"))
    finally:
        mock.terminate()
        mock.wait(timeout=10)


if __name__ == "__main__":
    main()
