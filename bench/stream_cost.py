"""What screening a streamed answer costs the gateway, for answers as providers stream them.

    python bench/stream_cost.py [--chars 2000] [--token-chars 4] [--holdback 256] [--runs 5]
                                [--window-every-rule]

The overhead benches stream the mock provider's 20 short chunks; real answers run to thousands
of characters, one token (~4 characters) per event. This builds such an OpenAI chat stream (the
shared bench ticket's text, repeated to `--chars`), one event per chunk, and feeds it through
the relay's reader (`EventReader`) and `StreamGuard` under the default policy, as the gateway
does: the guard's hold-back windows judge the rules that block or redact (secrets), the rules
that only log (PII on output) read the whole text once at the end. It prints the CPU time per
stream of: the whole path; the reader alone; reader and guard with an engine that finds nothing
without scanning (event handling); one scan of the whole answer as a JSON response gets it; and
how many scans ran over how many characters (hold-back windows overlap: each scan re-reads up to
twice the hold-back before the new text). Medians of `--runs` runs of one engine, warmed by a
run first (output scans are never cached; the detectors' per-word memos are, as in a running
gateway)."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from signalvault.gateway.sse import EventReader
from signalvault.gateway.stream_guard import StreamGuard
from signalvault.guardrails.engine import Context, Engine, Redactor, Verdict
from signalvault.guardrails.policy import DEFAULT_RULES, Policy

SHARED_BODY = Path(__file__).resolve().parents[2] / "shared" / "bench" / "body_chat.json"
CONTEXT = Context(None, "key", "dev", "gpt-4o-mini", None)


class Counting:
    """An engine that records the size of every scan (`scanning=False`: finds nothing)."""

    def __init__(self, inner: Engine, scanning: bool = True) -> None:
        self.policy, self._inner, self._scanning = inner.policy, inner, scanning
        self.sizes: list[int] = []

    def rules_for(self, *args: Any) -> Any:
        return self._inner.rules_for(*args)

    def scan(self, segments: Sequence[str], *args: Any) -> Verdict:
        self.sizes.append(sum(map(len, segments)))
        return self._inner.scan(segments, *args) if self._scanning else Verdict()


def _tokens(text: str, model: str | None) -> int:
    return len(text)


def answer(chars: int) -> str:
    body = json.loads(SHARED_BODY.read_text())
    text = body["messages"][1]["content"]
    return (text + " ") * (chars // (len(text) + 1) + 1)


def stream(text: str, token_chars: int) -> list[bytes]:
    head = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini"}

    def event(delta: dict[str, str]) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": None}
        return b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n"

    tokens = [text[i : i + token_chars] for i in range(0, len(text), token_chars)]
    return [event({"role": "assistant", "content": ""}), *map(lambda t: event({"content": t}),
            tokens), b"data: [DONE]\n\n"]  # fmt: skip


def timed(run: Callable[..., Any], *args: Any) -> float:
    started = time.process_time()
    run(*args)
    return time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--chars", type=int, default=2000, help="characters of the answer")
    parser.add_argument("--token-chars", type=int, default=4, help="characters per event")
    parser.add_argument("--holdback", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--window-every-rule", action="store_true", help="log-only rules in the windows too"
    )
    args = parser.parse_args()
    text = answer(args.chars)[: args.chars]
    chunks = stream(text, args.token_chars)
    results: dict[str, list[float]] = {}
    scans: list[int] = []

    output_rules = Engine(Policy(1, DEFAULT_RULES), _tokens).rules_for("output", CONTEXT)
    acting = [r for r in output_rules if r.action != "log"]
    logging = [r for r in output_rules if r.action == "log"]

    def guarded(engine: Any) -> None:
        """As the relay screens a stream: the guard's windows judge the rules that block or
        redact, the rules that only log read the whole text once at the end (every rule in the
        windows with --window-every-rule, as before December 7th 2026)."""
        rules = None if args.window_every_rule else acting
        guard = StreamGuard("chat", engine, CONTEXT, Redactor(), args.holdback, None, rules)
        reader = EventReader("chat")
        for chunk in chunks:
            guard.feed(chunk, reader.feed(chunk))
        guard.finish(reader.rest())
        if rules is not None:
            engine.scan([text], "output", CONTEXT, Redactor(), logging)

    def read_only() -> None:
        reader = EventReader("chat")
        for chunk in chunks:
            reader.feed(chunk)

    engine = Engine(Policy(1, DEFAULT_RULES), _tokens)
    guarded(engine)  # warm: a gateway's engine has its per-word caches filled
    for _ in range(args.runs):
        counting = Counting(engine)
        results.setdefault("whole path (reader, guard, scans)", []).append(timed(guarded, counting))
        scans = counting.sizes
        results.setdefault("reader alone", []).append(timed(read_only))
        results.setdefault("reader and guard, no scanning", []).append(
            timed(guarded, Counting(engine, scanning=False))
        )
        results.setdefault("one scan of the whole answer", []).append(
            timed(engine.scan, [text], "output", CONTEXT, Redactor())
        )
    print(
        f"{len(text)} characters in {len(chunks) - 2} events of {args.token_chars}, "
        f"hold-back {args.holdback}: {len(scans)} scans over {sum(scans)} characters "
        f"({sum(scans) / len(text):.1f}x the answer); CPU, median of {args.runs}:"
    )
    for name, values in results.items():
        print(f"  {name:36} {statistics.median(values) * 1000:7.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
