"""One MCP request through the gateway as an `mcp_call` record of its run: tool exposed by the
server and allowed by the policy's `tool_allowlist`, arguments screened (text rules, then the
`tool_arguments` rules; redacted, or blocked and never sent), written ahead before anything
reaches the server (fail closed), forwarded, result screened (`output` rules, then the
`tool_result` rules, then spotlighted where a rule says so), record completed.

The record joins the run of its session or trace, under the `tool_call` it carries out (the
run's latest call of that tool), so `traces show` has it in place between call and result.

Three outcomes are kept apart: the HTTP status (`status_code`, 200 for every JSON-RPC answer),
a JSON-RPC error (`error_code` `jsonrpc:<code>`, the code in `attempts`), and the tool's own
failure (`isError`: outcome `tool_error`), which travels as a successful JSON-RPC result.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from mcp.shared.exceptions import MCPError

from signalvault.agents.capture import TOOL_CALLS, ToolEvents
from signalvault.agents.mcp.access import is_exposed, usable
from signalvault.agents.mcp.upstream import UpstreamServer, UpstreamUnavailable
from signalvault.agents.spotlight import Spotlight
from signalvault.agents.tool_policy import ToolPolicy, run_limit_evaluation
from signalvault.crypto.gateway_keys import GatewayKey
from signalvault.errors import GuardrailBlocked, HTTPError, StoreError
from signalvault.guardrails.engine import Context, Evaluation
from signalvault.guardrails.policy import TOOL_RESULT, Rule
from signalvault.trail.audit import (
    BLOCKED,
    CANCELLED,
    MCP_CALL,
    OK,
    PROVIDER_ERROR,
    REJECTED,
    TOOL_ERROR,
    UNAUTHORIZED,
    AuditTrail,
    Interaction,
)

API = "mcp"
# JSON-RPC error codes the gateway answers with (implementation-defined server errors).
GUARDRAIL_BLOCKED = -32001
TOOL_NOT_ALLOWED = -32003
RUN_LIMIT_EXCEEDED = -32004
STORE_UNAVAILABLE = -32005
GUARDRAIL_UNAVAILABLE = -32006
# Keys whose values are not text a person or model wrote: never scanned.
_NOT_TEXT = frozenset(
    {"type", "mimeType", "uri", "blob", "data", "_meta", "annotations", "isError", "role"}
)

SPOTLIGHTED = "spotlighted"
# Methods whose results are data a model will read as such (a prompt is meant as instructions).
_SPOTLIT = frozenset({"tools/call", "resources/read"})

Slot = tuple[Any, Any]  # (container, key): container[key] is a str


class Screening(Protocol):
    """The gateway's active guardrails as MCP calls use them (gateway/screening.Screen)."""

    @property
    def policy_version(self) -> int | None: ...

    @property
    def tools(self) -> ToolPolicy:
        """The policy's agent rules."""
        ...

    def texts(
        self, interaction: Interaction, slots: list[Slot], direction: str, what: str
    ) -> GuardrailBlocked | None:
        """Screens `slots` in place for `direction`: redacts, or masks every finding and returns
        the block. Raises HTTPError when the guardrail engine fails closed."""
        ...


CurrentScreen = Callable[[], Awaitable[Screening]]
# Receives (record id, arguments, result) as forwarded and answered, before the record completes:
# OpenTelemetry export with `capture_content` on. None: content goes nowhere but the trail.
ContentSink = Callable[[str, bytes, bytes | None], None]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent an MCP request, from its HTTP request: the gateway key and attribution."""

    key: GatewayKey
    end_user: str | None = None
    session_id: str | None = None
    trace_id: str | None = None
    parent_span: str | None = None


class McpCalls:
    def __init__(
        self,
        trail: AuditTrail,
        current: CurrentScreen,
        agents: ToolEvents,
        content: ContentSink | None = None,
    ) -> None:
        self._trail = trail
        self._current = current
        self._agents = agents
        self._content = content

    async def listable(self, caller: Caller, server: UpstreamServer, names: list[str]) -> set[str]:
        """The tool names `tools/list` shows this caller (exposed, and allowed by the policy)."""
        screen = await self._current()
        return usable(server.settings, screen.tools, _context(caller.key), names)

    async def call(
        self,
        caller: Caller,
        server: UpstreamServer,
        method: str,
        name: str | None,
        params: dict[str, Any],
        forward: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """Record and run one call; `params` is what would go upstream, `forward` sends it.

        Raises:
            MCPError: the JSON-RPC error the caller gets (refusal, block, server's own error).
        """
        screen = await self._current()  # one policy version for the whole call
        try:
            interaction = self._interaction(caller, server, method, name)
        except StoreError:  # finding its run needs the store, as recording it does
            raise MCPError(
                STORE_UNAVAILABLE, "The audit store is unavailable; the call was not forwarded."
            ) from None
        interaction.policy_version = screen.policy_version
        is_tool = method == "tools/call" and name is not None
        if is_tool:
            refusal = await self._admit(screen, interaction, server, str(name))
            if refusal is not None:
                raise refusal
        blocked = await self._screen(screen, interaction, params, "input")
        if blocked is None and is_tool:
            blocked = self._judge_arguments(screen, interaction, str(name), params)
        if blocked is not None:
            # Kept with every finding masked; the server never sees it.
            await self._refuse(interaction, BLOCKED, "guardrail_violation", params)
            raise blocked
        arguments = orjson.dumps(params)
        try:
            await self._trail.begin(interaction, arguments)
        except StoreError:
            raise MCPError(
                STORE_UNAVAILABLE, "The audit store is unavailable; the call was not forwarded."
            ) from None
        sent = time.perf_counter()
        try:
            result = await forward(params)
        except MCPError as exc:
            self._upstream_failed(interaction, exc, sent)
            raise
        except asyncio.CancelledError:  # the caller went away, or the gateway is stopping
            self._finish(interaction, CANCELLED, "cancelled", None)
            raise
        except Exception:
            self._trail.abandon(interaction)
            raise
        is_error = result.get("isError") is True
        self._note(interaction, sent, is_error=is_error)
        try:
            blocked = await self._screen(screen, interaction, result, "output")
            if blocked is None:  # and as what it is: data from a tool, for a model to read
                blocked = await self._screen(screen, interaction, result, TOOL_RESULT)
        except MCPError:
            self._finish(interaction, REJECTED, "guardrail_unavailable", None)
            raise
        if blocked is not None:
            self._finish(interaction, BLOCKED, "guardrail_violation", result)
            raise blocked
        if method in _SPOTLIT:
            _spotlight(result, interaction, screen.tools.spotlight_rules(_context(caller.key)))
        if self._content is not None:
            self._content(interaction.id, arguments, orjson.dumps(result))
        self._finish(interaction, TOOL_ERROR if is_error else OK, None, result)
        return result

    async def unauthorized(self, end_user: str | None, code: str) -> None:
        """Record a request refused for its key (401): metadata only."""
        interaction = Interaction(api=API, kind=MCP_CALL, end_user=end_user)
        interaction.status_code, interaction.outcome, interaction.error_code = (
            401,
            UNAUTHORIZED,
            code,
        )
        with contextlib.suppress(StoreError):  # nothing was forwarded either way
            await self._trail.record_rejected(interaction, None)

    def _interaction(
        self, caller: Caller, server: UpstreamServer, method: str, name: str | None
    ) -> Interaction:
        """The call's record, in its run and under the tool call it carries out.

        Raises:
            StoreError: the store could not say which run or call that is.
        """
        key = caller.key
        interaction = Interaction(
            api=API,
            kind=MCP_CALL,
            key=key,
            end_user=caller.end_user,
            session_id=caller.session_id,
            trace_id=caller.trace_id,
            run_id=self._agents.run_of(key.project, caller.session_id, caller.trace_id),
            provider=server.name,
            tool_name=name,
            parent_span=caller.parent_span,
            details={"method": method, "server": server.name, "transport": server.transport},
        )
        if interaction.run_id is not None and method == "tools/call" and name is not None:
            # The model's call this one carries out: the run's latest call of the tool.
            interaction.parent_id = self._agents.latest.find(interaction.run_id, name)
        return interaction

    async def _admit(
        self, screen: Screening, interaction: Interaction, server: UpstreamServer, name: str
    ) -> MCPError | None:
        """The server's exposure, then the policy's allowlists: the refusal, recorded."""
        message = f"This API key may not use the tool `{name}`."
        if not is_exposed(server.settings, name):
            await self._refuse(interaction, REJECTED, "tool_not_allowed", None)
            return MCPError(TOOL_NOT_ALLOWED, message)
        judged = screen.tools.judge_allowlist(name, _context(interaction.key))
        interaction.evaluations.extend(e.as_dict() for e in judged)
        if any(e.outcome == "blocked" for e in judged):
            await self._refuse(interaction, BLOCKED, "tool_not_allowed", None)
            return MCPError(TOOL_NOT_ALLOWED, message, _data("tool_not_allowed", judged))
        return await self._within_run_limit(screen, interaction)

    async def _within_run_limit(
        self, screen: Screening, interaction: Interaction
    ) -> MCPError | None:
        """The run's tool-call limit: a call carrying out no tool call the model asked for is one
        more tool call of the run; one that does was counted when the model asked for it. Past
        the limit the run is cut off on the tool side too (refused, recorded)."""
        run_id = interaction.run_id
        rules = [] if run_id is None else screen.tools.limit_rules(_context(interaction.key))
        if run_id is None or not rules:
            return None
        counts = self._agents.runs.get(run_id)
        extra = 1 if interaction.parent_id is None else 0
        refused: list[Evaluation] = []
        for rule in rules:
            most = rule.options.get("max_tool_calls")
            reached = TOOL_CALLS if most is not None and counts[1] + extra > most else None
            evaluation = run_limit_evaluation(rule, reached)
            interaction.evaluations.append(evaluation.as_dict())
            if evaluation.outcome == "blocked":
                refused.append(evaluation)
        if refused:
            await self._refuse(interaction, BLOCKED, "run_limit_exceeded", None)
            return MCPError(
                RUN_LIMIT_EXCEEDED,
                f"This agent run reached its limit of tool calls (guardrail rule "
                f"{refused[0].rule}); start a new run.",
                _data("run_limit_exceeded", refused),
            )
        self._agents.runs.add(run_id, tool_calls=extra)
        return None

    def _judge_arguments(
        self, screen: Screening, interaction: Interaction, name: str, params: dict[str, Any]
    ) -> MCPError | None:
        """The `tool_arguments` rules on the arguments as they would be forwarded."""
        arguments = orjson.dumps(params.get("arguments") or {}).decode()
        judged = screen.tools.judge_arguments(name, arguments, _context(interaction.key))
        interaction.evaluations.extend(e.as_dict() for e in judged)
        if not any(e.outcome == "blocked" for e in judged):
            return None
        data = _data("guardrail_violation", judged)
        message = (
            f"The MCP request was blocked by guardrail rule(s) {', '.join(data['rules'])}: "
            f"found {', '.join(data['kinds'])}."
        )
        return MCPError(GUARDRAIL_BLOCKED, message, data)

    async def _screen(
        self, screen: Screening, interaction: Interaction, payload: dict[str, Any], direction: str
    ) -> MCPError | None:
        what = "The MCP request" if direction == "input" else "The MCP result"
        try:
            blocked = screen.texts(interaction, text_slots(payload), direction, what)
        except HTTPError as exc:  # the engine failed and the failure mode is closed
            if direction == "input":
                await self._refuse(interaction, REJECTED, exc.code, None)
            raise MCPError(GUARDRAIL_UNAVAILABLE, exc.message) from None
        if blocked is None:
            return None
        data = {"code": blocked.code, "rules": blocked.rules, "kinds": blocked.kinds}
        return MCPError(GUARDRAIL_BLOCKED, blocked.message, data)

    async def _refuse(
        self, interaction: Interaction, outcome: str, code: str, stored: dict[str, Any] | None
    ) -> None:
        """Record a call refused before it was forwarded (`stored`: the masked request)."""
        interaction.status_code, interaction.outcome, interaction.error_code = 200, outcome, code
        with contextlib.suppress(StoreError):  # nothing was forwarded either way
            await self._trail.record_rejected(
                interaction, None if stored is None else orjson.dumps(stored)
            )

    def _upstream_failed(self, interaction: Interaction, error: MCPError, sent: float) -> None:
        self._note(interaction, sent, jsonrpc_error=error.code)
        if isinstance(error, UpstreamUnavailable):
            code = "upstream_timeout" if error.timed_out else "upstream_unavailable"
        else:
            code = f"jsonrpc:{error.code}"
        self._finish(interaction, PROVIDER_ERROR, code, None)

    def _note(
        self,
        interaction: Interaction,
        sent: float,
        *,
        is_error: bool | None = None,
        jsonrpc_error: int | None = None,
    ) -> None:
        details = interaction.details or {}
        interaction.attempts.append(
            {
                "server": interaction.provider,
                "method": details.get("method"),
                "transport": details.get("transport"),
                "ms": round((time.perf_counter() - sent) * 1000.0, 2),
                "jsonrpc_error": jsonrpc_error,
                "is_error": is_error,
            }
        )

    def _finish(
        self, interaction: Interaction, outcome: str, code: str | None, result: Any
    ) -> None:
        interaction.status_code, interaction.outcome, interaction.error_code = 200, outcome, code
        self._trail.complete(interaction, None if result is None else orjson.dumps(result))


def _context(key: GatewayKey | None) -> Context:
    """What the policy's rules of an MCP call depend on besides text: the key and its project."""
    if key is None:
        return Context()
    return Context(project=key.project, key_id=key.id, environment=key.environment)


def _data(code: str, judged: list[Evaluation]) -> dict[str, Any]:
    """The JSON-RPC error's `data` for a refusal by rules: which rules and kinds, no values."""
    blocked = [e for e in judged if e.outcome == "blocked"]
    kinds = sorted({k for e in blocked for k in e.kinds})
    return {"code": code, "rules": sorted({e.rule for e in blocked}), "kinds": kinds}


def _spotlight(result: dict[str, Any], interaction: Interaction, rules: list[Rule]) -> None:
    """Mark the result's texts as data (the first applying rule's mode), recorded as outcome
    `spotlighted` of each spotlight rule, as for tool results sent to a model."""
    if not rules:
        return
    spotlight = Spotlight(str(rules[0].options.get("mode", "delimit")))
    for part in [*result.get("content", ()), *result.get("contents", ())]:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            part["text"] = spotlight.mark(part["text"])
    found = {(e["rule"], e["direction"]): e for e in interaction.evaluations}
    for rule in rules:
        entry = found.get((rule.name, TOOL_RESULT))
        if entry is None:
            entry = {"rule": rule.name, "detector": rule.detector, "direction": TOOL_RESULT}
            entry.update(action="spotlight", kinds={})
            interaction.evaluations.append(entry)
        entry["outcome"] = SPOTLIGHTED


def text_slots(value: Any) -> list[Slot]:
    """Every non-empty string an MCP payload carries as text (arguments, text content, resource
    texts, prompt messages); not types, URIs, base64 data or metadata."""
    slots: list[Slot] = []
    _walk(value, slots)
    return slots


def _walk(value: Any, slots: list[Slot]) -> None:
    if isinstance(value, dict):
        for name, item in value.items():
            if name in _NOT_TEXT:
                continue
            if isinstance(item, str):
                if item:
                    slots.append((value, name))
            else:
                _walk(item, slots)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                if item:
                    slots.append((value, index))
            else:
                _walk(item, slots)
