"""Fixtures of the agent tests: the mock MCP server (mcp_fixtures.py)."""

from tests.agents.mcp_fixtures import mock_mcp, mock_mcp_server

__all__ = ["mock_mcp", "mock_mcp_server"]
