"""One upstream MCP server (`[[mcp_servers]]`): a connection through the SDK's `Client`, over
Streamable HTTP (`url`) or to a process it starts (`command`, stdio), opened at the first request
and shared by every caller (JSON-RPC ids keep their requests apart), reopened after it breaks.

What comes back is the server's result as JSON (the wire's camelCase names) or an `MCPError`:
the server's own JSON-RPC error passed on, or `UpstreamUnavailable` when it could not be reached.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, INVALID_REQUEST
from pydantic import BaseModel

from signalvault.agents.mcp.held import Held
from signalvault.config import McpServerSettings

log = logging.getLogger("signalvault.mcp")

# JSON-RPC error codes of the gateway itself (the implementation-defined server-error range).
UPSTREAM_UNAVAILABLE = -32010
UPSTREAM_TIMEOUT = -32011

_LOST_SESSION = frozenset({"Session terminated", "Session not found"})


class UpstreamUnavailable(MCPError):
    """The upstream server could not be reached, or broke while answering."""

    def __init__(self, server: str, *, timed_out: bool = False) -> None:
        what = "did not answer in time" if timed_out else "is unavailable"
        super().__init__(
            UPSTREAM_TIMEOUT if timed_out else UPSTREAM_UNAVAILABLE,
            f"The MCP server {server!r} {what}.",
        )
        self.timed_out = timed_out


class UpstreamServer:
    def __init__(self, settings: McpServerSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.transport = "http" if settings.url else "stdio"
        self._held: Held[Client] | None = None
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def list_tools(self, cursor: str | None) -> dict[str, Any]:
        return await self._ask(lambda c: c.list_tools(cursor=cursor))

    async def call_tool(self, name: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
        return await self._ask(lambda c: c.call_tool(name, arguments))

    async def list_resources(self, cursor: str | None) -> dict[str, Any]:
        return await self._ask(lambda c: c.list_resources(cursor=cursor))

    async def list_resource_templates(self, cursor: str | None) -> dict[str, Any]:
        return await self._ask(lambda c: c.list_resource_templates(cursor=cursor))

    async def read_resource(self, uri: str) -> dict[str, Any]:
        return await self._ask(lambda c: c.read_resource(uri))

    async def list_prompts(self, cursor: str | None) -> dict[str, Any]:
        return await self._ask(lambda c: c.list_prompts(cursor=cursor))

    async def get_prompt(self, name: str, arguments: dict[str, str] | None) -> dict[str, Any]:
        return await self._ask(lambda c: c.get_prompt(name, arguments))

    async def _ask(self, request: Callable[[Client], Awaitable[BaseModel]]) -> dict[str, Any]:
        """Send one request, within `timeout_seconds`; the answer as wire JSON. A session the
        server forgot (it restarted) is opened again and the request sent once more: the
        server refused it before running anything.

        Raises:
            MCPError: the server's JSON-RPC error, or UpstreamUnavailable.
        """
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                try:
                    result = await request(await self._connected())
                except MCPError as exc:
                    if not _is_lost_session(exc):
                        raise
                    await self._reset()
                    result = await request(await self._connected())
        except MCPError as exc:
            if isinstance(exc, UpstreamUnavailable):
                raise
            if _is_lost_session(exc) or _is_closed(exc) or not self._is_alive():
                await self._reset()
                raise UpstreamUnavailable(self.name) from None
            raise  # the server's own answer: it stays connected
        except TimeoutError:
            raise UpstreamUnavailable(self.name, timed_out=True) from None
        except Exception as exc:  # transport broken (process gone, connection refused, ...)
            log.warning(
                "MCP server unavailable", extra={"server": self.name, "error": type(exc).__name__}
            )
            await self._reset()
            raise UpstreamUnavailable(self.name) from None
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)

    def _is_alive(self) -> bool:
        return self._held is not None and self._held.is_open

    async def _connected(self) -> Client:
        if self._client is not None and self._is_alive():
            return self._client
        async with self._lock:
            if self._client is not None and self._is_alive():
                return self._client
            await self._reset()
            held = Held(self._open())
            self._client = await held.open()
            self._held = held
            return self._client

    def _open(self) -> AbstractAsyncContextManager[Client]:
        settings = self.settings
        if settings.command:
            target: Any = StdioServerParameters(
                command=settings.command,
                args=list(settings.args),
                env={name: value.reveal() for name, value in settings.env.items()} or None,
            )
            return _quiet_stdio(target)
        return _http_client(settings)

    async def _reset(self) -> None:
        held, self._held, self._client = self._held, None, None
        if held is not None:
            await held.close()

    async def close(self) -> None:
        async with self._lock:
            await self._reset()


def _is_closed(error: MCPError) -> bool:
    """The SDK's own error for a connection that closed under a request (the server went away):
    it comes before the connection is seen to be closed, so `_is_alive` can still say yes."""
    return error.code == CONNECTION_CLOSED and error.message == "Connection closed"


def _is_lost_session(error: MCPError) -> bool:
    """The SDK's words for a session the server no longer knows (HTTP 404 on a session)."""
    return error.code == INVALID_REQUEST and error.message in _LOST_SESSION


def _http_client(settings: McpServerSettings) -> AbstractAsyncContextManager[Client]:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    @asynccontextmanager
    async def opened() -> Any:
        headers = {name: value.reveal() for name, value in settings.headers.items()}
        timeout = httpx2.Timeout(settings.timeout_seconds)
        async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
            transport = streamable_http_client(settings.url, http_client=http)
            async with Client(transport, cache=None, mode="legacy") as client:
                yield client

    return opened()


@asynccontextmanager
async def _quiet_stdio(target: StdioServerParameters) -> Any:
    """The process's stderr goes nowhere: it may echo tool arguments, and it would land in
    the gateway's own log."""
    from mcp.client.stdio import stdio_client

    with open(os.devnull, "w") as devnull:
        transport = stdio_client(target, errlog=devnull)
        async with Client(transport, cache=None, mode="legacy") as client:
            yield client
