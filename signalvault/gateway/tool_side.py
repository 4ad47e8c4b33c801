"""One request's tool side between the proxy, the relay and signalvault.agents: the calls a
response asks for (JSON or streamed), judged by the tool policies before they leave, attributed
their share of the output scan, and recorded as `tool_call` events once the model call is.

Exists only for requests that offer tools or send tool results (`ToolEvents.open`), so a plain
request pays nothing here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from signalvault.agents.attribution import (
    Hit,
    hits_by_segment,
    merge_into,
    own_evaluations,
    segments_of,
    summarize,
)
from signalvault.agents.capture import AgentTurn, ToolEvents
from signalvault.agents.tool_calls import ToolCall, calls_in_response
from signalvault.agents.tool_policy import ToolPolicy
from signalvault.errors import HTTPError
from signalvault.gateway.screening import Screened
from signalvault.gateway.stream_guard import ArgumentJudge, StreamGuard
from signalvault.gateway.wire import StreamAssembler
from signalvault.guardrails.engine import Context, Evaluation, Verdict
from signalvault.trail.audit import Interaction
from signalvault.trail.linked import Linked


class ToolSide:
    """Made per request with a tool side, so a plain class: a dataclass's generated
    `__init__` with two factory fields cost twice the bytecodes."""

    __slots__ = ("_context", "_judged", "_shares", "events", "make_context", "policy", "turn")

    def __init__(
        self,
        events: ToolEvents,
        turn: AgentTurn,
        policy: ToolPolicy,
        make_context: Callable[[], Context],  # called once, if a tool rule is to be judged
    ) -> None:
        self.events = events
        self.turn = turn
        self.policy = policy
        self.make_context = make_context
        self._context: Context | None = None
        self._judged: dict[int, list[Evaluation]] = {}  # by call position (tool-call rules)
        self._shares: dict[int, list[dict[str, Any]]] = {}  # of the output scan

    def context(self) -> Context:
        if self._context is None:
            self._context = self.make_context()
        return self._context

    # -- JSON ---------------------------------------------------------------------------------
    def calls_in(self, interaction: Interaction, parsed: Any) -> list[ToolCall]:
        """The calls of a complete response, read before screening rewrites it."""
        return calls_in_response(interaction.api, parsed)

    def judge_response(
        self, interaction: Interaction, calls: list[ToolCall], screened: Screened
    ) -> HTTPError | None:
        """Tool policies on each call (the refusal, if one blocks) and each call's share of the
        output scan; the calls' stored form follows what the trail keeps (redacted)."""
        error = None
        if self.policy.has_call_rules:
            judged, error = self.events.judge_calls(calls, self.policy, self.context)
            for call, evaluations in zip(calls, judged, strict=True):
                self._judged[call.position] = evaluations
            merge_into(interaction.evaluations, [e for es in judged for e in es])
        verdict = screened.verdict
        if verdict is not None and verdict.findings:
            self._attribute_json(calls, verdict, screened)
        if screened.stored is not screened.forward:
            stored = calls_in_response(interaction.api, _loads(screened.stored))
            if len(stored) == len(calls):
                for call, kept in zip(calls, stored, strict=True):
                    call.arguments = kept.arguments
        return error

    def _attribute_json(self, calls: list[ToolCall], verdict: Verdict, screened: Screened) -> None:
        hits = hits_by_segment(verdict)
        for call in calls:
            holders = call.holders()
            mine = [h for s in segments_of(holders, screened.slots) for h in hits.get(s, ())]
            self._shares[call.position] = summarize(verdict.evaluations, mine)

    def linked(self, interaction: Interaction, calls: list[ToolCall]) -> list[Linked]:
        """The calls' tool_call events, for the model call's completion to record."""
        summaries = [
            self._shares.get(c.position, []) + own_evaluations(self._judged.get(c.position, []))
            for c in calls
        ]
        return self.events.call_events(interaction, calls, summaries)

    # -- streams ------------------------------------------------------------------------------
    def stream_judge(self, assembler: StreamAssembler) -> ArgumentJudge | None:
        """A judge for the stream guard when a tool-call rule may block: each call's arguments
        are held until complete, then judged with the name its first event gave."""
        if not self.policy.has_call_rules or not self.policy.blocks_calls(self.context()):
            return None

        def judge(index: int, arguments: str) -> HTTPError | None:
            _, name = assembler.tool_heads.get(index, (None, None))
            call = ToolCall(None, name if isinstance(name, str) else None, arguments, index)
            judged, error = self.events.judge_calls([call], self.policy, self.context)
            self._judged[index] = judged[0]
            return error

        return judge

    def finish_stream(
        self,
        interaction: Interaction,
        assembler: StreamAssembler,
        guard: StreamGuard | None,
        logged: Verdict | None,
        logged_positions: Sequence[int] = (),
    ) -> list[Linked]:
        """The stream's calls as tool_call events (judging any the guard did not), with their
        share of the output scan, for the model call's completion to record (`logged_positions`:
        the call of each argument segment `logged` scanned after the text, in order)."""
        positions = sorted(set(assembler.tool_heads) | set(assembler.tool_arguments))
        calls = []
        for position in positions:
            call_id, name = assembler.tool_heads.get(position, (None, None))
            arguments = "".join(assembler.tool_arguments.get(position, ()))
            calls.append(
                ToolCall(
                    call_id[:128] if isinstance(call_id, str) else None,
                    name[:256] if isinstance(name, str) else None,
                    arguments,
                    position,
                )
            )
        if not calls:
            return []
        if self.policy.has_call_rules:
            late = [c for c in calls if c.position not in self._judged]
            if late:
                judged, _ = self.events.judge_calls(late, self.policy, self.context)
                for call, evaluations in zip(late, judged, strict=True):
                    self._judged[call.position] = evaluations
            merge_into(interaction.evaluations, [e for c in late for e in self._judged[c.position]])
        self._shares = {}  # (a call without hits has no share: summarize would find none)
        scanned, hits = _stream_hits(guard, logged, logged_positions)
        for call in calls:
            found = hits.get(call.position)
            if found:
                self._shares[call.position] = summarize(scanned, found)
        return self.linked(interaction, calls)


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _stream_hits(
    guard: StreamGuard | None, logged: Verdict | None, positions: Sequence[int]
) -> tuple[list[Evaluation], dict[int, list[Hit]]]:
    """A stream's output evaluations and each tool call's hits, by its position: a guard's
    windows judged the rules that act, `logged` the whole text once by the rules that only log
    (by every output rule when no guard ran)."""
    evaluations: list[Evaluation] = []
    hits: dict[int, list[Hit]] = {}
    if guard is not None:
        evaluations += guard.evaluations
        for position, found in guard.argument_hits.items():
            hits.setdefault(position, []).extend(found)
    if logged is not None:
        evaluations += logged.evaluations
        by_segment = hits_by_segment(logged) if logged.findings else {}
        for number, position in enumerate(positions):
            hits.setdefault(position, []).extend(by_segment.get(number + 1, ()))
    return evaluations, hits
