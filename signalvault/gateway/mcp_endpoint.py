"""`/mcp/<name>`: the configured MCP servers over Streamable HTTP (SPEC §7b). This module is the
HTTP door: the gateway key (401 and a JSON-RPC error without one), attribution headers, and the
gateway's guardrails (the active Screen) handed to agents/mcp, which serves the protocol and
records every call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson

from signalvault.agents.capture import ToolEvents
from signalvault.agents.mcp.calls import Caller, ContentSink, McpCalls
from signalvault.agents.mcp.servers import McpServers
from signalvault.agents.telemetry.ids import parse_traceparent
from signalvault.config import Settings
from signalvault.errors import AuthError, StoreError
from signalvault.gateway.asgi import Receive, Scope, Send, send_json
from signalvault.gateway.keyring import KeyRing
from signalvault.gateway.request_body import presented_key
from signalvault.gateway.screening import Screen
from signalvault.gateway.wire import MAX_ATTRIBUTION
from signalvault.trail.audit import AuditTrail

PREFIX = "/mcp/"  # app.py routes it here (MCP_PREFIX)
_HEADERS = frozenset(
    {
        b"authorization",
        b"x-api-key",
        b"x-signalvault-user",
        b"x-signalvault-session",
        b"traceparent",
    }
)
# JSON-RPC codes of refusals before any MCP message is read.
_UNAUTHORIZED, _NOT_FOUND, _UNAVAILABLE, _INVALID = -32001, -32601, -32005, -32600


class McpEndpoint:
    def __init__(self, keyring: KeyRing, servers: McpServers) -> None:
        self._keyring = keyring
        self._servers = servers

    @classmethod
    def build(
        cls,
        settings: Settings,
        keyring: KeyRing,
        trail: AuditTrail,
        current: Callable[[], Awaitable[Screen]],
        agents: ToolEvents,
        content: ContentSink | None = None,
    ) -> McpEndpoint:
        """`current`: the active guardrail screen, as for /v1 (its text rules and tool
        policies); `agents`: the same tool-event service as /v1, so MCP calls join its runs."""
        calls = McpCalls(trail, current, agents, content)
        servers = McpServers(settings.mcp_servers, calls, settings.server.max_body_bytes)
        return cls(keyring, servers)

    async def start(self) -> None:
        await self._servers.start()

    async def stop(self) -> None:
        """Ends the SDK's session managers and closes the upstream connections (and processes)."""
        await self._servers.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path"][len(PREFIX) :].rstrip("/")
        if name not in self._servers:
            await _error(send, 404, _NOT_FOUND, f"No MCP server is named {name[:64]!r}.")
            return
        if scope["method"] != "POST":
            # The servers run stateless with JSON answers: no session to end (DELETE) and
            # nothing ever sent on a standalone stream (GET), which would hold the caller's
            # connection open for nothing. The MCP transport answers this 405.
            allow = [(b"allow", b"POST")]
            await _error(send, 405, _INVALID, "MCP over HTTP here takes POST only.", allow)
            return
        headers = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope["headers"]
            if key in _HEADERS
        }
        end_user = _attribution(headers.get("x-signalvault-user"))
        try:
            key = self._keyring.authenticate(presented_key(headers))
        except AuthError as exc:
            await self._servers.calls.unauthorized(end_user, exc.code)
            await _error(send, 401, _UNAUTHORIZED, exc.message, [(b"www-authenticate", b"Bearer")])
            return
        except StoreError:
            await _error(send, 503, _UNAVAILABLE, "The audit store is unavailable.")
            return
        trace = parse_traceparent(headers.get("traceparent"))
        caller = Caller(
            key=key,
            end_user=end_user,
            session_id=_attribution(headers.get("x-signalvault-session")),
            trace_id=trace[0] if trace else None,
            parent_span=trace[1] if trace else None,
        )
        await self._servers.handle(name, caller, scope, receive, send)


def _attribution(value: str | None) -> str | None:
    return value[:MAX_ATTRIBUTION] if value else None


async def _error(
    send: Send,
    status: int,
    code: int,
    message: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    await send_json(send, status, orjson.dumps(body), None, extra)
