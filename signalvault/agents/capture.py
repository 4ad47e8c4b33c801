"""Tool calls and results as events of a run (SPEC §7b), for the gateway to call per request.

A request that offers tools or sends results back opens an `AgentTurn`: its new results become
`tool_result` events linked to the calls they answer (or flagged when they answer none), and the
model call joins its run (session, else trace, else through those calls). A response's calls
become `tool_call` events under the model call. Events are lean `ToolEvent`s held in the record
they were found in (trail.linked): results in the request's, written ahead with it, calls in the
model call's, written with its completion. Tool arguments and results are content: encrypted
under the end user's data key, like the prompt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from signalvault.agents.attribution import hits_by_segment, merge_into, segments_of, summarize
from signalvault.agents.call_index import CallIndex, KnownCall, LatestCalls, RunCounts
from signalvault.agents.run_ids import run_id_of, run_of_record
from signalvault.agents.spotlight import Spotlight, result_field
from signalvault.agents.tool_calls import (
    ToolCall,
    ToolResult,
    may_carry_results,
    offered_tools,
    results_in_request,
)
from signalvault.agents.tool_policy import (
    NOT_ALLOWED,
    ToolPolicy,
    run_limit_evaluation,
)
from signalvault.errors import Forbidden, GuardrailBlocked, HTTPError
from signalvault.guardrails.engine import Context, Evaluation, Verdict
from signalvault.guardrails.policy import TOOL_RESULT as TOOL_RESULT_DIRECTION
from signalvault.guardrails.policy import Rule
from signalvault.store import Store
from signalvault.store.run_queries import latest_tool_call, run_counts, run_of_trace, tool_events
from signalvault.trail.audit import (
    BLOCKED,
    OK,
    TOOL_CALL,
    TOOL_RESULT,
    AuditTrail,
    Interaction,
)
from signalvault.trail.linked import Linked, ToolEvent
from signalvault.trail.record_ids import event_id

UNMATCHED = "unmatched"  # a result answering no call the gateway saw (history the client wrote)
SPOTLIGHTED = "spotlighted"
MODEL_CALLS = "MODEL_CALLS_OVER_LIMIT"
TOOL_CALLS = "TOOL_CALLS_OVER_LIMIT"


class ToolNotAllowed(Forbidden):
    code = "tool_not_allowed"


class RunLimitExceeded(Forbidden):
    code = "run_limit_exceeded"


class AgentTurn:
    """What one request has to do with tools: the tools it offers, new results and their
    events. (Made per tool request: a plain class costs half a dataclass's generated
    `__init__` with factory fields.)"""

    __slots__ = ("answers", "events", "interaction", "results", "tools")

    def __init__(self, interaction: Interaction, tools: list[Any]) -> None:
        self.interaction = interaction
        # The request's `tools`, read by name only if an allowlist asks (`offered`).
        self.tools = tools
        self.results: list[ToolResult] = []
        self.events: list[ToolEvent] = []  # one tool_result per new result
        # The calls its new results answer, by call id: answered once the request is forwarded
        # (`ToolEvents.forwarded`), not before: a refused result must meet the rules again.
        self.answers: list[tuple[str, KnownCall]] = []

    def offered(self) -> list[str]:
        """Names of the tools offered."""
        return offered_tools(self.tools)


class ToolEvents:
    """The per-process service: opens turns, judges tool rules, records tool events."""

    def __init__(self, trail: AuditTrail, store: Store, has_mcp: bool = True) -> None:
        self._trail = trail
        self.store = store
        engine = store.engine
        self.calls = CallIndex(lambda project, ids: tool_events(engine, project, ids))
        self.runs = RunCounts(lambda run_id: run_counts(engine, run_id))
        self.latest = LatestCalls(lambda run_id, name: latest_tool_call(engine, run_id, name))
        # Only MCP calls look up the latest call of a tool (and find it in the store when this
        # process kept none): without MCP servers, calls are not remembered for them.
        self._has_mcp = has_mcp

    def run_of(
        self, project: str | None, session_id: str | None, trace_id: str | None
    ) -> str | None:
        """The run of a request made outside a model call (an MCP call): its session's, else
        the run its trace joined first (a trace seen under a session is the session's run),
        else its trace's own."""
        if not session_id and trace_id:
            found = run_of_trace(self.store.engine, project, trace_id)
            if found is not None:
                return found
        return run_id_of(project, session_id, trace_id)

    # -- requests -----------------------------------------------------------------------------
    def open(self, interaction: Interaction, payload: dict[str, Any]) -> AgentTurn | None:
        """The request's tool side, or None when it offers no tools and sends no results."""
        api = interaction.api
        results = results_in_request(api, payload) if may_carry_results(api, payload) else []
        tools = payload.get("tools")
        tools = tools if isinstance(tools, list) else []
        if not results and not tools:
            return None
        turn = AgentTurn(interaction, tools)
        if results:
            self._take_results(turn, results)
        if interaction.run_id is None:
            # No session, no trace, no earlier call: a run of its own, which the calls the model
            # asks for now (and the results answering them) will join.
            interaction.run_id = run_of_record(interaction.id)
        if turn.events:
            interaction.parent_id = turn.events[-1].id
        return turn

    def _take_results(self, turn: AgentTurn, results: list[ToolResult]) -> None:
        """The new results of `results` as `tool_result` events of `turn`, each linked to the
        call it answers (the request joins that call's run), and the calls they answer."""
        interaction = turn.interaction
        project = interaction.key.project if interaction.key else None
        ids = [r.call_id for r in results if r.call_id]
        known = self.calls.find(project, ids) if ids else {}
        now = time.time()
        events = turn.events
        for result in results:
            call_id = result.call_id
            call = known.get(call_id) if call_id else None
            if call is None:
                called_at, parent_id, tool_name = now, None, None
            else:
                if interaction.run_id is None and call.run_id:
                    interaction.run_id = call.run_id  # history sent again still names its run
                if call.is_answered:
                    continue  # history: recorded when it was first sent
                called_at, parent_id = call.created_at, call.record_id
                tool_name = call.tool_name if parent_id is not None else None
            size = len(result.content.encode())
            details: dict[str, Any] = (
                {"result_bytes": size, "flags": [UNMATCHED]}
                if parent_id is None
                else {"result_bytes": size, "answered_after_ms": round((now - called_at) * 1000, 1)}
            )
            event = ToolEvent(
                TOOL_RESULT,
                interaction,
                call_id,
                event_id(interaction.id, len(events)),
                now,
                parent_id,
                tool_name,
                details=details,
                call_run=call.run_id if parent_id is not None and call is not None else None,
            )
            turn.results.append(result)
            events.append(event)
            if call_id:
                turn.answers.append(
                    (call_id, KnownCall(parent_id, None, called_at, tool_name, True))
                )

    def forwarded(self, turn: AgentTurn) -> None:
        """The request goes to the provider (its record is written ahead): the calls its results
        answer are answered from now on, and results sent again are history. Until then they are
        not: a result a rule refused, sent again, is judged again (held in a refused record, its
        event keeps the refusal as outcome and gets no link row, so no process reads it as an
        answer either)."""
        interaction = turn.interaction
        project = interaction.key.project if interaction.key else None
        for call_id, entry in turn.answers:
            entry.run_id = interaction.run_id
            self.calls.remember(project, call_id, entry)

    def admit(
        self, interaction: Interaction, turn: AgentTurn | None, policy: ToolPolicy, context: Context
    ) -> HTTPError | None:
        """Tool allowlists on the offered tools and the run's limits: the refusal, or None."""
        evaluations: list[Evaluation] = []
        error: HTTPError | None = None
        if turn is not None and turn.tools and policy.has_allowlists:
            evaluations += policy.judge_offered(turn.offered(), context)
            if any(e.outcome == "blocked" for e in evaluations):
                error = ToolNotAllowed(
                    "This API key may not offer the model one or more of the tools in `tools`.",
                    param="tools",
                )
        run_id = interaction.run_id
        if error is None and run_id is not None:
            rules = policy.limit_rules(context)
            if rules:
                counts = self.runs.get(run_id)
                for rule in rules:
                    reached = _reached(rule.options, counts)
                    evaluations.append(run_limit_evaluation(rule, reached))
                    if reached and rule.action == "block" and error is None:
                        error = RunLimitExceeded(
                            f"This agent run reached its limit of "
                            f"{'model calls' if reached == MODEL_CALLS else 'tool calls'} "
                            f"(guardrail rule {rule.name}); start a new run."
                        )
        interaction.evaluations.extend(e.as_dict() for e in evaluations)
        return error

    def screen_results(
        self,
        turn: AgentTurn,
        policy: ToolPolicy,
        context: Callable[[], Context],
        slots: Sequence[tuple[Any, Any]],
        verdict: Verdict | None,
    ) -> tuple[GuardrailBlocked | None, bool]:
        """The tool_result rules over the new results, each result's own guardrail results on
        its event, and spotlighting. Returns (the block, if any; whether the payload changed).
        `context` is only asked for when the policy has tool-result rules."""
        if not turn.results:
            return None, False
        judged = None
        if policy.has_result_rules:
            rules_context = context()
            judged = policy.judge_results([r.content for r in turn.results], rules_context)
        # Attribution walks the result's JSON: only worth it when a scan found something (a
        # rule that found nothing in an event is left out of the event's results).
        own = hits_by_segment(judged) if judged is not None and judged.findings else {}
        general = hits_by_segment(verdict) if verdict is not None and verdict.findings else {}
        if own or general:
            for index, (result, event) in enumerate(zip(turn.results, turn.events, strict=True)):
                summary = []
                if general and verdict is not None:
                    holders = result.holders()
                    mine = [h for s in segments_of(holders, slots) for h in general.get(s, ())]
                    summary = summarize(verdict.evaluations, mine)
                if own and judged is not None:
                    summary += summarize(judged.evaluations, own.get(index, ()))
                event.evaluations = summary
                if any(e["outcome"] == "blocked" for e in summary):
                    event.outcome = BLOCKED
        if judged is None:
            return None, False
        merge_into(turn.interaction.evaluations, judged.evaluations)
        blocked = judged.blocked_by
        if blocked:
            rules = sorted({e.rule for e in blocked})
            kinds = sorted({k for e in blocked for k in e.kinds})
            message = (
                f"A tool result was blocked by guardrail rule(s) {', '.join(rules)}: "
                f"found {', '.join(kinds)}."
            )
            return GuardrailBlocked(message, rules=rules, kinds=kinds), False
        return None, _spotlight(turn, policy.spotlight_rules(rules_context))

    def result_events(self, turn: AgentTurn | None, refused: str | None = None) -> list[Linked]:
        """The turn's tool_result events with their content, to be recorded with the request
        (of its class: the trail classifies the request as it writes it). `refused`: the
        outcome of a request refused before forwarding, which its results take unless a rule
        of their own gave them one (they never reached the model)."""
        if turn is None:
            return []
        if refused is not None:
            for event in turn.events:
                if event.outcome == OK:
                    event.outcome = refused
        return [
            (event, _result_content(result))
            for result, event in zip(turn.results, turn.events, strict=True)
        ]

    def count_model_call(self, interaction: Interaction) -> None:
        if interaction.run_id is not None:
            self.runs.add(interaction.run_id, model_calls=1)

    # -- responses ----------------------------------------------------------------------------
    def judge_calls(
        self, calls: Sequence[ToolCall], policy: ToolPolicy, context: Callable[[], Context]
    ) -> tuple[list[list[Evaluation]], HTTPError | None]:
        """Each call's tool-policy evaluations, and the refusal of the response if one blocks.
        `context` is only asked for when the policy has tool-call rules."""
        if not policy.has_call_rules:
            return [[] for _ in calls], None
        rules_context = context()
        judged = [policy.judge_call(c.name, c.arguments, rules_context) for c in calls]
        error: HTTPError | None = None
        blocked = [e for evaluations in judged for e in evaluations if e.outcome == "blocked"]
        if any(NOT_ALLOWED in e.kinds for e in blocked):
            error = ToolNotAllowed("The model asked for a tool this API key may not call.")
        elif blocked:
            rules = sorted({e.rule for e in blocked})
            kinds = sorted({k for e in blocked for k in e.kinds})
            error = GuardrailBlocked(
                f"A tool call was blocked by guardrail rule(s) {', '.join(rules)}: found "
                f"{', '.join(kinds)}.",
                rules=rules,
                kinds=kinds,
            )
        return judged, error

    def call_events(
        self,
        interaction: Interaction,
        calls: Sequence[ToolCall],
        evaluations: Sequence[list[dict[str, Any]]],
    ) -> list[Linked]:
        """One tool_call event per call under the model call, with its arguments, to be
        recorded with the model call's outcome (of the answer's class, set as it is written).
        `evaluations`: each call's guardrail results, a list the event takes as it is."""
        project = interaction.key.project if interaction.key else None
        run_id = interaction.run_id
        linked: list[Linked] = []
        now = time.time()
        held = len(interaction.held or ())  # results its request sent come first in the record
        for index, (call, summary) in enumerate(zip(calls, evaluations, strict=True), held):
            arguments = call.arguments
            blocked = summary and any(e["outcome"] == "blocked" for e in summary)
            event = ToolEvent(
                TOOL_CALL,
                interaction,
                call.call_id,
                event_id(interaction.id, index),
                now,
                interaction.id,
                call.name,
                BLOCKED if blocked else interaction.outcome,
                summary,
                {"position": call.position, "arguments_bytes": len(arguments.encode())},
            )
            linked.append((event, arguments))
            if self._has_mcp and run_id is not None and call.name:
                self.latest.remember(run_id, call.name, event.id)
            if call.call_id:
                self.calls.remember(
                    project, call.call_id, KnownCall(event.id, run_id, now, call.name)
                )
        if run_id is not None:
            self.runs.add(run_id, tool_calls=len(calls))
        return linked


def _spotlight(turn: AgentTurn, rules: list[Rule]) -> bool:
    """Mark every new result as data (the first rule's mode), found something or not, and record
    the action on each result and on the model call; True if the payload changed."""
    if not rules:
        return False
    spotlight = Spotlight(str(rules[0].options.get("mode", "delimit")))
    changed = False
    for result in turn.results:
        changed = spotlight.apply(result.node, result_field(result.node)) or changed
    names = {rule.name for rule in rules}
    for event in turn.events:
        found = {e["rule"]: e for e in event.evaluations if e["rule"] in names}
        for rule in rules:
            entry = found.get(rule.name)
            if entry is None:
                entry = {"rule": rule.name, "detector": rule.detector, "kinds": {}}
                entry.update(direction=TOOL_RESULT_DIRECTION, action="spotlight")
                event.evaluations.append(entry)
            entry["outcome"] = SPOTLIGHTED
    for entry in turn.interaction.evaluations:
        if entry["rule"] in names and entry["direction"] == TOOL_RESULT_DIRECTION:
            entry["outcome"] = SPOTLIGHTED
    return changed


def _reached(options: Any, counts: list[int]) -> str | None:
    max_models, max_tools = options.get("max_model_calls"), options.get("max_tool_calls")
    if max_models is not None and counts[0] >= max_models:
        return MODEL_CALLS
    if max_tools is not None and counts[1] > max_tools:
        return TOOL_CALLS
    return None


def _result_content(result: ToolResult) -> str:
    """The result as the provider got it (redacted, spotlighted): its text, else its JSON."""
    value = result.node.get(result_field(result.node))
    return value if isinstance(value, str) else orjson.dumps(value).decode()
