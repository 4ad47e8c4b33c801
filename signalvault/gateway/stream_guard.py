"""Output guardrails on a streamed (SSE) response: events pass as they come, except the last
`holdback` characters of generated text, so a finding split across events is caught before any
part of it leaves. Imports guardrails, errors, wire and sse; knows no HTTP."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from signalvault.errors import GuardrailBlocked, HTTPError
from signalvault.gateway.sse import ChannelKey, Event, Piece, full_text_slots
from signalvault.gateway.wire import sse_error_event
from signalvault.guardrails.engine import Context, Engine, Evaluation, Redactor, Verdict
from signalvault.guardrails.policy import Rule

_OUTCOMES = {"block": "blocked", "redact": "redacted", "log": "logged"}
# Judges one tool call's complete arguments (by the index StreamAssembler uses) before any of
# them leave: the refusal of the stream, or None (signalvault.agents tool policies).
ArgumentJudge = Callable[[int, str], HTTPError | None]
_STRENGTH = {"pass": 0, "logged": 1, "redacted": 2, "blocked": 3}


class _Channel:
    """One text stream (a choice's content, a content block, one tool call's arguments)."""

    def __init__(self, ordinal: int, key: ChannelKey) -> None:
        self.ordinal = ordinal
        self.key = key
        self.is_json = key[0] == "a"
        self.is_judged = False  # tool arguments: judged whole by the ArgumentJudge
        self.text = ""  # the provider's text from offset `base` on; older text is dropped
        self.base = 0
        self.total = 0  # characters received
        self.released = 0  # characters whose events went out
        self.skip = 0  # characters consumed by a placeholder already sent
        self.scanned = 0  # `total` at the last scan
        self.growing: list[tuple[int, int, str]] = []  # findings that may still grow at the end
        self.is_closed = False
        self.held = 0  # pieces queued
        self.spans: dict[tuple[int, int], str] = {}  # redactions not yet sent -> placeholder
        self.carry = ""  # what may be the start of a placeholder split across events
        self.sent: list[str] = []  # the client's text, for the Responses API's `.done` events
        self.is_changed = False

    def limit(self) -> int:
        """Text from here on waits: the start of a finding that may still grow, else the end."""
        if not self.growing:  # nearly always: no generator per call (several per event)
            return self.total
        return min((s for s, _, _ in self.growing), default=self.total)


@dataclass(slots=True)
class _Tally:
    evaluation: Evaluation
    outcome: str = "pass"
    kinds: dict[str, int] = field(default_factory=dict)
    spans: list[tuple[int, int, int]] = field(default_factory=list)
    seen: dict[tuple[int, str], list[tuple[int, int]]] = field(default_factory=dict)
    ms: float = 0.0

    def is_new(self, ordinal: int, kind: str, start: int, end: int) -> bool:
        """Once per value: a window with other context may report it again, or a little wider."""
        spans = self.seen.setdefault((ordinal, kind), [])
        if any((s < end and start < e) or s == e == end for s, e in spans[-8:]):
            return False
        spans.append((start, end))
        return True


class StreamGuard:
    """Screens an SSE stream as it passes: forwards events, holding back the last `holdback`
    characters of generated text so a finding split across chunks is caught before it leaves."""

    def __init__(
        self,
        api: str,
        engine: Engine,
        context: Context,
        redactor: Redactor,
        holdback: int = 256,
        judge_arguments: ArgumentJudge | None = None,
        rules: Sequence[Rule] | None = None,
    ) -> None:
        self.blocked: GuardrailBlocked | None = None
        self.refused: HTTPError | None = None  # a tool call the ArgumentJudge refused
        # (rule, kind) of findings in each tool call's arguments, by the assembler's index.
        self.argument_hits: dict[int, list[tuple[str, str]]] = {}
        self._judge = judge_arguments
        self._api = api
        self._engine = engine
        self._context = context
        # The rules judged in the hold-back windows (every output rule unless told): those that
        # change what leaves. Rules that only log need not see the text before it leaves.
        self._rules = rules
        self._redactor = redactor
        self._holdback = holdback
        self._batch = max(1, holdback // 4)
        self._queue: deque[tuple[Event, list[tuple[Piece, int, int]]]] = deque()
        self._channels: dict[ChannelKey, _Channel] = {}
        self._tallies: dict[str, _Tally] = {}
        self._stored: list[str] = []
        self._arguments: dict[int, list[str]] = {}
        self._sequence = -1
        self._restorable = {r.name: bool(r.options.get("restore")) for r in engine.policy.rules}
        self._is_finished = False
        self._is_bypassed = False
        self.is_aborted = False  # ended by abort() (the engine failed, fail-closed)

    def feed(self, chunk: bytes, events: list[Event]) -> bytes:
        """The events the stream's reader (the relay's StreamAssembler) cut from `chunk`; the
        whole events that may go to the client now out.

        Raises:
            Exception: whatever the guardrail engine raised; apply the failure mode (`abort`
                when closed, `bypass` when open).
        """
        if self._is_bypassed:
            return chunk
        if self._is_finished:
            return b""
        for event in events:
            self._admit(event)
        return self._advance()

    def finish(self, tail: Event | None) -> bytes:
        """The provider's stream ended (`tail`: the reader's unterminated last event, if any):
        final scan, then everything still held."""
        if self._is_finished:
            return b""
        if tail is not None:
            self._admit(tail)
        for channel in self._channels.values():
            channel.is_closed = True
        out = self._advance()
        if not self._tallies:  # no text at all: still record that every output rule passed
            self._merge(self._engine.scan([], "output", self._context, Redactor(), self._rules), [])
        self._is_finished = True
        return out

    def abort(self, error: HTTPError) -> bytes:
        """End the stream with `error` as a native error event (e.g. the engine failed)."""
        if self._is_finished:
            return b""
        self._is_finished = self.is_aborted = True
        self._queue.clear()
        return self._error_event(error)

    def bypass(self, pending: bytes) -> bytes:
        """Fail-open: what is held goes out unscreened, then `pending` (the bytes the reader holds
        of an event not yet whole); later chunks pass through unchanged."""
        if self._is_finished:
            return b""
        self._is_finished = self._is_bypassed = True
        held = [event.raw for event, _ in self._queue] + [pending]
        self._queue.clear()
        return b"".join(held)

    @property
    def engine_failed(self) -> bool:
        """The engine failed on this stream: aborted (fail-closed) or passed unscreened (open)."""
        return self.is_aborted or self._is_bypassed

    @property
    def is_stopped(self) -> bool:
        """Blocked, refused or aborted: nothing more may reach the client."""
        return self.blocked is not None or self.refused is not None or self.is_aborted

    @property
    def evaluations(self) -> list[Evaluation]:
        """One evaluation per rule, merged over every scan of this stream."""
        merged = []
        for tally in self._tallies.values():
            e = tally.evaluation
            merged.append(
                Evaluation(e.rule, e.detector, e.direction, e.action, tally.outcome,
                           dict(tally.kinds), tuple(tally.spans), tally.ms)
            )  # fmt: skip
        return merged

    def stored_text(self) -> str:
        """The generated text as logged: redacted, never restored, blocked values masked."""
        return "".join(self._stored)

    def stored_arguments(self) -> dict[int, str]:
        """Tool-call arguments as logged, by the index StreamAssembler uses."""
        return {index: "".join(parts) for index, parts in sorted(self._arguments.items())}

    def _admit(self, event: Event) -> None:
        pieces = []
        for piece in event.pieces:
            channel = self._channels.get(piece.channel)
            if channel is None:
                channel = self._channels[piece.channel] = _Channel(
                    len(self._channels), piece.channel
                )
            text: str = piece.container[piece.key]
            start = channel.total
            channel.text += text
            channel.total += len(text)
            channel.held += 1
            pieces.append((piece, start, channel.total))
        for prefix in event.closes:
            for key, channel in self._channels.items():
                if key[: len(prefix)] == prefix:
                    channel.is_closed = True
        self._queue.append((event, pieces))

    def _advance(self) -> bytes:
        # Scans are batched: a quarter of the hold-back of new text (or the end of a text) is
        # worth one; unscanned text is held like the hold-back itself (see `_is_ready`).
        dirty = [
            c for c in self._channels.values()
            if c.total - c.scanned >= self._batch
            or (c.is_closed and (c.total > c.scanned or c.growing))
        ]  # fmt: skip
        if dirty:
            self._scan(dirty)
        if self.blocked is not None:
            self._is_finished = True
            return self._error_event(self.blocked)
        if self._judge is not None:
            self._judge_closed_arguments()
            if self.refused is not None:
                self._is_finished = True
                for _, pieces in self._queue:  # kept (encrypted) as received, never sent
                    for piece, start, end in pieces:
                        self._keep(
                            piece.channel, self._render(self._channels[piece.channel], start, end)
                        )
                self._queue.clear()
                return self._error_event(self.refused)
        return self._release()

    def _judge_closed_arguments(self) -> None:
        for channel in self._channels.values():
            if (
                channel.is_json
                and not channel.is_judged
                and channel.is_closed
                and channel.scanned == channel.total
                and not channel.growing
            ):
                channel.is_judged = True
                # Held whole until closed, so nothing of it was trimmed yet.
                refusal = self._judge(int(channel.key[-1]), channel.text) if self._judge else None
                if refusal is not None and self.refused is None:
                    self.refused = refusal

    def _scan(self, dirty: list[_Channel]) -> None:
        windows: list[tuple[_Channel, int]] = []
        for channel in dirty:
            # A new finding ends after the last scan, so starts at most `holdback` before it;
            # another `holdback` of context lets keyword and word-boundary rules see around it.
            start = min(channel.scanned - self._holdback, channel.limit())
            windows.append((channel, max(channel.base, start - self._holdback)))
            channel.scanned, channel.growing = channel.total, []
        segments = [c.text[origin - c.base :] for c, origin in windows]
        verdict = self._engine.scan(segments, "output", self._context, Redactor(), self._rules)
        self._merge(verdict, windows)

    def _merge(self, verdict: Verdict, windows: list[tuple[_Channel, int]]) -> None:
        findings = iter(verdict.findings)
        blocking: list[tuple[str, str]] = []
        for evaluation in verdict.evaluations:
            tally = self._tallies.setdefault(evaluation.rule, _Tally(evaluation))
            tally.ms += evaluation.ms
            action = evaluation.action
            for segment, finding in [next(findings) for _ in evaluation.spans]:
                ordinal, start, end = -1, 0, 0
                if finding.end > finding.start:  # not a whole-request finding (token limit)
                    channel, origin = windows[segment]
                    start, end = origin + finding.start, origin + finding.end
                    if end <= channel.released:
                        continue  # already out, and judged when it was not
                    if (
                        end >= channel.total
                        and end - start < self._holdback
                        and not channel.is_closed
                    ):
                        # May still grow ("a@b.co" + "m", a key missing characters): hold from its
                        # start and decide on the whole; past `holdback` it is judged as it is.
                        channel.growing.append((start, end, finding.kind))
                        continue
                    ordinal = channel.ordinal
                    if action == "redact":
                        restorable = self._restorable.get(evaluation.rule, False)
                        self._redact(channel, start, end, finding.kind, self._redactor, restorable)
                if tally.is_new(ordinal, finding.kind, start, end):
                    tally.kinds[finding.kind] = tally.kinds.get(finding.kind, 0) + 1
                    tally.spans.append((ordinal, start, end))
                    if ordinal >= 0 and channel.is_json:
                        hits = self.argument_hits.setdefault(int(channel.key[-1]), [])
                        hits.append((evaluation.rule, finding.kind))
                if _STRENGTH[_OUTCOMES[action]] > _STRENGTH[tally.outcome]:
                    tally.outcome = _OUTCOMES[action]
                if action == "block":
                    blocking.append((evaluation.rule, finding.kind))
        if blocking:
            rules, kinds = sorted({r for r, _ in blocking}), sorted({k for _, k in blocking})
            message = (
                f"The response was blocked by guardrail rule(s) {', '.join(rules)}: "
                f"found {', '.join(kinds)}."
            )
            self.blocked = GuardrailBlocked(message, rules=rules, kinds=kinds)
            self._store_blocked(verdict, windows)

    def _redact(
        self,
        channel: _Channel,
        start: int,
        end: int,
        kind: str,
        redactor: Redactor,
        restorable: bool,
    ) -> None:
        value = channel.text[start - channel.base : end - channel.base]
        # A finding longer than the hold-back may have begun in text already sent: cover the rest.
        start = max(start, channel.released, channel.skip)
        if end > start and (start, end) not in channel.spans:
            channel.spans[(start, end)] = redactor.placeholder(kind, value, restorable=restorable)

    def _store_blocked(self, verdict: Verdict, windows: list[tuple[_Channel, int]]) -> None:
        # The held text never leaves, but the audit trail keeps it with every finding masked.
        scratch = Redactor()
        for segment, finding in verdict.findings:
            if finding.end > finding.start:
                channel, origin = windows[segment]
                self._redact(channel, origin + finding.start, origin + finding.end,
                             finding.kind, scratch, False)  # fmt: skip
        for channel in self._channels.values():
            for start, end, kind in channel.growing:
                self._redact(channel, start, end, kind, scratch, False)
        for _, pieces in self._queue:
            for piece, start, end in pieces:
                self._keep(piece.channel, self._render(self._channels[piece.channel], start, end))
        self._queue.clear()

    def _release(self) -> bytes:
        out: list[bytes] = []
        queue = self._queue
        while queue:
            event, pieces = queue[0]
            for piece, _, end in pieces:  # (a loop, not all() over a generator, per event)
                if not self._is_ready(piece, end):
                    return b"".join(out)
            queue.popleft()
            out.append(self._emit(event, pieces))
        return b"".join(out)

    def _is_ready(self, piece: Piece, end: int) -> bool:
        channel = self._channels[piece.channel]
        if channel.is_json and self._judge is not None and not channel.is_judged:
            return False  # a tool call leaves whole, once judged
        if channel.is_closed and channel.scanned == channel.total:
            return True
        return end <= min(channel.scanned - self._holdback, channel.limit())

    def _emit(self, event: Event, pieces: list[tuple[Piece, int, int]]) -> bytes:
        for piece, start, end in pieces:
            channel = self._channels[piece.channel]
            channel.held -= 1
            stored = self._render(channel, start, end)
            channel.released = end
            sent = self._restore(channel, stored)
            self._keep(piece.channel, stored)
            if self._api == "responses":
                channel.sent.append(sent)
            if sent != piece.container[piece.key]:
                piece.container[piece.key] = sent
                channel.is_changed = event.is_changed = True
                _drop_logprobs(piece.owner)
            self._trim(channel)
        if self._api == "responses":
            for container, key, channel_key in full_text_slots(event.data):
                repeated = self._channels.get(channel_key)
                if repeated is not None and repeated.is_changed:
                    container[key] = "".join(repeated.sent)
                    event.is_changed = True
                    _drop_logprobs(container)
            # Only the Responses API's error event carries a sequence number (sse_error_event).
            data = event.data
            if isinstance(data, dict) and isinstance(data.get("sequence_number"), int):
                self._sequence = data["sequence_number"]
        return event.encode()

    def _render(self, channel: _Channel, start: int, end: int) -> str:
        """Provider text [start, end) with each redaction's placeholder in the event where it
        begins and the rest of its characters taken out of the events that follow."""
        pos, base = max(start, channel.skip), channel.base
        if not channel.spans:  # most events: no redaction pending, the text as it came
            return channel.text[pos - base : end - base] if pos < end else ""
        parts: list[str] = []
        for (s, e), placeholder in sorted(channel.spans.items(), key=lambda i: (i[0][0], -i[0][1])):
            if s >= end:
                break
            del channel.spans[(s, e)]
            if e <= pos:
                continue  # inside a placeholder already written (overlapping findings)
            parts += [channel.text[pos - base : max(s, pos) - base], placeholder]
            pos = channel.skip = e
        if pos < end:
            parts.append(channel.text[pos - base : end - base])
        return "".join(parts)

    def _restore(self, channel: _Channel, text: str) -> str:
        originals = self._redactor.originals
        text, channel.carry = channel.carry + text, ""
        if not originals:
            return text
        # A placeholder split across events is restored whole, in the event where it ends.
        cut = text.rfind("[", max(0, len(text) - max(map(len, originals))))
        tail = text[cut:] if cut != -1 and channel.held else ""
        if tail and tail not in originals and any(p.startswith(tail) for p in originals):
            text, channel.carry = text[:cut], tail
        for placeholder, value in originals.items():
            if placeholder in text:
                # Inside tool arguments the value lands in a JSON string and must stay valid.
                escaped = orjson.dumps(value).decode()[1:-1] if channel.is_json else value
                text = text.replace(placeholder, escaped)
        return text

    def _keep(self, key: ChannelKey, stored: str) -> None:
        if key[0] == "t":
            self._stored.append(stored)
        else:
            self._arguments.setdefault(int(key[-1]), []).append(stored)

    def _trim(self, channel: _Channel) -> None:
        # What is kept starts at most `total - 2 * holdback` (len(text) - 2 * holdback past
        # `base`), so a text of up to 4 * holdback characters is never trimmed: no work per
        # event for it.
        if len(channel.text) <= 4 * self._holdback:
            return
        keep = min(channel.released, channel.scanned - self._holdback, channel.limit())
        keep = max(channel.base, keep - self._holdback)
        # Drop old text only once it is most of the buffer, so trimming stays linear overall.
        if keep - channel.base > len(channel.text) // 2:
            channel.text = channel.text[keep - channel.base :]
            channel.base = keep

    def _error_event(self, error: HTTPError) -> bytes:
        return sse_error_event(self._api, error, self._sequence)


def _drop_logprobs(owner: dict[str, Any] | None) -> None:
    # Log-probabilities repeat the original tokens; once the text changed they would leak it.
    if owner is not None and owner.get("logprobs"):
        owner["logprobs"] = [] if isinstance(owner["logprobs"], list) else None
