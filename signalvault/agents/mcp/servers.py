"""The configured MCP servers as the gateway exposes them: for each, an SDK `Server` whose handlers
list what the caller's key may use and send every call through `McpCalls`, served by the SDK's
Streamable HTTP session manager.

Stateless, JSON answers: each POST is one exchange, so any worker or replica can answer any
request (a stateful session lives in one process's memory), and nothing is held between them.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import mcp_types as types
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError

from signalvault import __version__
from signalvault.agents.mcp.calls import Caller, McpCalls
from signalvault.agents.mcp.held import Held
from signalvault.agents.mcp.upstream import UpstreamServer
from signalvault.config import McpServerSettings

CALLER_SCOPE_KEY = "signalvault.mcp.caller"  # where the endpoint leaves the Caller in the scope


class McpServers:
    def __init__(
        self, servers: tuple[McpServerSettings, ...], calls: McpCalls, max_body_bytes: int
    ) -> None:
        self.calls = calls
        self._max_body = max_body_bytes
        self.upstreams = {s.name: UpstreamServer(s) for s in servers}
        self._managers: dict[str, StreamableHTTPSessionManager] = {}
        self._held: list[Held[None]] = []

    def __contains__(self, name: str) -> bool:
        return name in self.upstreams

    async def start(self) -> None:
        for name, upstream in self.upstreams.items():
            manager = StreamableHTTPSessionManager(
                app=self._sdk_server(upstream),
                stateless=True,
                json_response=True,
                max_request_body_size=self._max_body,
            )
            held: Held[None] = Held(manager.run())
            await held.open()
            self._held.append(held)
            self._managers[name] = manager

    async def stop(self) -> None:
        for held in self._held:
            await held.close()
        self._held.clear()
        self._managers.clear()
        await asyncio.gather(*(u.close() for u in self.upstreams.values()))

    async def handle(self, name: str, caller: Caller, scope: Any, receive: Any, send: Any) -> None:
        """Serve one HTTP request of `/mcp/<name>` for an authenticated caller."""
        scope = {**scope, CALLER_SCOPE_KEY: caller}
        await self._managers[name].handle_request(scope, receive, send)

    def _sdk_server(self, upstream: UpstreamServer) -> Server[Any]:
        calls = self.calls

        async def list_tools(
            ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
        ) -> dict[str, Any]:
            caller = _caller(ctx)
            listed = await upstream.list_tools(_cursor(params))
            tools = listed.get("tools", [])
            shown = await calls.listable(caller, upstream, [str(t.get("name")) for t in tools])
            listed["tools"] = [tool for tool in tools if str(tool.get("name")) in shown]
            return listed

        async def call_tool(
            ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
        ) -> dict[str, Any]:
            sent = {"name": params.name, "arguments": params.arguments or {}}
            return await calls.call(
                _caller(ctx),
                upstream,
                "tools/call",
                params.name,
                sent,
                lambda p: upstream.call_tool(p["name"], p["arguments"]),
            )

        async def read_resource(
            ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
        ) -> dict[str, Any]:
            sent = {"uri": str(params.uri)}
            return await calls.call(
                _caller(ctx),
                upstream,
                "resources/read",
                None,
                sent,
                lambda p: upstream.read_resource(p["uri"]),
            )

        async def get_prompt(
            ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams
        ) -> dict[str, Any]:
            sent = {"name": params.name, "arguments": dict(params.arguments or {})}
            return await calls.call(
                _caller(ctx),
                upstream,
                "prompts/get",
                params.name,
                sent,
                lambda p: upstream.get_prompt(p["name"], p["arguments"]),
            )

        async def list_resources(
            ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
        ) -> dict[str, Any]:
            _caller(ctx)
            return await upstream.list_resources(_cursor(params))

        async def list_resource_templates(
            ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
        ) -> dict[str, Any]:
            _caller(ctx)
            return await upstream.list_resource_templates(_cursor(params))

        async def list_prompts(
            ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
        ) -> dict[str, Any]:
            _caller(ctx)
            return await upstream.list_prompts(_cursor(params))

        return Server(
            f"signalvault/{upstream.name}",
            version=__version__,
            on_list_tools=list_tools,  # type: ignore[arg-type]
            on_call_tool=call_tool,  # type: ignore[arg-type]
            on_list_resources=list_resources,  # type: ignore[arg-type]
            on_list_resource_templates=list_resource_templates,  # type: ignore[arg-type]
            on_read_resource=read_resource,  # type: ignore[arg-type]
            on_list_prompts=list_prompts,  # type: ignore[arg-type]
            on_get_prompt=get_prompt,  # type: ignore[arg-type]
        )


def _caller(ctx: ServerRequestContext[Any]) -> Caller:
    request = ctx.request
    caller = None
    with contextlib.suppress(AttributeError):
        caller = request.scope.get(CALLER_SCOPE_KEY)  # type: ignore[union-attr]
    if not isinstance(caller, Caller):  # only reachable through the authenticated endpoint
        raise MCPError(types.INVALID_REQUEST, "Not authenticated.")
    return caller


def _cursor(params: types.PaginatedRequestParams | None) -> str | None:
    return params.cursor if params is not None else None
