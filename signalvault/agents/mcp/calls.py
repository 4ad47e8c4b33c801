"""One MCP request through the gateway as an `mcp_call` record: tool allowed for the key,
arguments screened (redacted, or blocked and never sent), written ahead before anything reaches
the server (fail closed), forwarded, result screened, record completed.

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
from typing import Any

import orjson
from mcp.shared.exceptions import MCPError

from signalvault.agents.mcp.access import allows_tool
from signalvault.agents.mcp.upstream import UpstreamServer, UpstreamUnavailable
from signalvault.agents.run_ids import run_id_of
from signalvault.crypto.gateway_keys import GatewayKey
from signalvault.errors import GuardrailBlocked, HTTPError, StoreError
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
STORE_UNAVAILABLE = -32005
GUARDRAIL_UNAVAILABLE = -32006
# Keys whose values are not text a person or model wrote: never scanned.
_NOT_TEXT = frozenset(
    {"type", "mimeType", "uri", "blob", "data", "_meta", "annotations", "isError", "role"}
)

Slot = tuple[Any, Any]  # (container, key): container[key] is a str
# Screens `slots` in place for `direction` (input/output): redacts, or masks every finding and
# returns the block. Raises HTTPError when the guardrail engine fails closed.
Guard = Callable[[Interaction, list[Slot], str], Awaitable[GuardrailBlocked | None]]
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
    def __init__(self, trail: AuditTrail, guard: Guard, content: ContentSink | None = None) -> None:
        self._trail = trail
        self._guard = guard
        self._content = content

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
        interaction = _interaction(caller, server, method, name)
        is_tool = method == "tools/call" and name is not None
        if is_tool and not allows_tool(server.settings, caller.key, str(name)):
            error = MCPError(TOOL_NOT_ALLOWED, f"This API key may not use the tool `{name}`.")
            await self._refuse(interaction, REJECTED, "tool_not_allowed", None)
            raise error
        blocked = await self._screen(interaction, params, "input")
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
            blocked = await self._screen(interaction, result, "output")
        except MCPError:
            self._finish(interaction, REJECTED, "guardrail_unavailable", None)
            raise
        if blocked is not None:
            self._finish(interaction, BLOCKED, "guardrail_violation", result)
            raise blocked
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

    async def _screen(
        self, interaction: Interaction, payload: dict[str, Any], direction: str
    ) -> MCPError | None:
        try:
            blocked = await self._guard(interaction, text_slots(payload), direction)
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


def _interaction(
    caller: Caller, server: UpstreamServer, method: str, name: str | None
) -> Interaction:
    key = caller.key
    return Interaction(
        api=API,
        kind=MCP_CALL,
        key=key,
        end_user=caller.end_user,
        session_id=caller.session_id,
        trace_id=caller.trace_id,
        run_id=run_id_of(key.project, caller.session_id, caller.trace_id),
        provider=server.name,
        tool_name=name,
        parent_span=caller.parent_span,
        details={"method": method, "server": server.name, "transport": server.transport},
    )


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
