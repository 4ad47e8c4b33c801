"""A gateway with MCP servers on a real socket (the SDK's client speaks HTTP to it), the mock MCP
server over Streamable HTTP, and the SDK's own client with or without a gateway key."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from signalvault.app import GatewayApp, create_app
from signalvault.config import McpServerSettings, Settings, StoreSettings
from signalvault.mock_provider.mcp_server import MockMcp
from signalvault.server import BackgroundServer


@dataclass
class Gateway:
    app: GatewayApp
    port: int
    key: str

    def url(self, name: str = "mock") -> str:
        return f"http://127.0.0.1:{self.port}/mcp/{name}"


@pytest.fixture(scope="session")
def mock_mcp_server() -> Iterator[tuple[MockMcp, str]]:
    mock = MockMcp()
    server = BackgroundServer(mock.http_app()).start()
    yield mock, f"http://127.0.0.1:{server.port}/mcp"
    server.stop()


@pytest.fixture
def mock_mcp(mock_mcp_server: tuple[MockMcp, str]) -> MockMcp:
    mock_mcp_server[0].reset()
    return mock_mcp_server[0]


def mcp_settings(tmp_path, *servers: McpServerSettings, **store: object) -> Settings:
    return Settings(
        store=StoreSettings(data_dir=tmp_path / "data", **store),  # type: ignore[arg-type]
        mcp_servers=servers,
    )


@contextlib.contextmanager
def serving(settings: Settings, key_name: str = "agent") -> Iterator[Gateway]:
    """The gateway on a loopback port with one fresh key, stopped (lifespan shutdown) after."""
    app = create_app(settings)
    server = BackgroundServer(app).start()
    try:
        assert app.services is not None
        _, key = app.services.keyring.create(name=key_name, environment="dev")
        yield Gateway(app, server.port, key)
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def mcp_client(
    url: str, key: str | None, headers: dict[str, str] | None = None
) -> AsyncIterator[Client]:
    """The official SDK client over Streamable HTTP, presenting `key` as a bearer token."""
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    async with (
        # Generous: a stdio server starts at the first call, and a loaded machine is slow.
        httpx2.AsyncClient(headers=sent, timeout=60.0) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client
