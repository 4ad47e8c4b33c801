"""Fixtures for agent tests: the official SDKs pointed at an in-process gateway, and the mock
MCP server (mcp_fixtures.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import httpx
import httpx2  # the anthropic SDK's own fork of httpx
import openai
import pytest

from signalvault.app import GatewayApp
from tests.agents.mcp_fixtures import mock_mcp, mock_mcp_server

__all__ = ["mock_mcp", "mock_mcp_server"]


@pytest.fixture
async def sdk_http(gateway: GatewayApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


def openai_for(http: httpx.AsyncClient, key: str) -> openai.AsyncOpenAI:
    """The openai SDK over an in-process gateway's client (`http`), with a gateway key."""
    return openai.AsyncOpenAI(
        api_key=key,
        base_url=str(http.base_url).rstrip("/") + "/v1",
        http_client=http,
        max_retries=0,
    )


@pytest.fixture
def oai(sdk_http: httpx.AsyncClient, api_key: str) -> openai.AsyncOpenAI:
    return openai_for(sdk_http, api_key)


@pytest.fixture
async def claude(gateway: GatewayApp, api_key: str) -> AsyncIterator[anthropic.AsyncAnthropic]:
    transport = httpx2.ASGITransport(app=gateway)
    async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield anthropic.AsyncAnthropic(
            api_key=api_key, base_url="http://gateway", http_client=client, max_retries=0
        )
