"""MCP through the gateway, driven by the official SDK's client over Streamable HTTP: keys, tool
allowlists, guardrails both ways, the three outcomes recorded apart, fail-closed recording."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import httpx
import orjson
import pytest
from mcp.shared.exceptions import MCPError

from signalvault.agents.mcp.calls import GUARDRAIL_BLOCKED, STORE_UNAVAILABLE, TOOL_NOT_ALLOWED
from signalvault.agents.mcp.upstream import UPSTREAM_UNAVAILABLE
from signalvault.config import GuardrailSettings, McpServerSettings
from signalvault.mock_provider.mcp_server import MockMcp
from signalvault.server import BackgroundServer
from tests.agents.mcp_fixtures import mcp_client, mcp_settings, serving
from tests.conftest import records

pytestmark = pytest.mark.anyio
AWS_KEY = "AKIA" + "Q3VZ7TXK2MBN4PLD"
TRACE = "0af7651916cd43dd8448eb211c80319c"


def mcp_records(app) -> list[dict]:
    return [row for row in records(app) if row["kind"] == "mcp_call"]


@pytest.fixture
def server_settings(mock_mcp_server) -> McpServerSettings:
    return McpServerSettings(name="mock", url=mock_mcp_server[1])


async def test_lists_and_calls_tools_with_a_gateway_key(tmp_path, mock_mcp, server_settings):
    with serving(mcp_settings(tmp_path, server_settings)) as gateway:
        headers = {
            "X-SignalVault-Session": "run-7",
            "traceparent": f"00-{TRACE}-b7ad6b7169203331-01",
        }
        async with mcp_client(gateway.url(), gateway.key, headers) as client:
            tools = await client.list_tools()
            result = await client.call_tool("echo", {"text": "write to bob@example.com"})
        assert [t.name for t in tools.tools] == ["echo", "fetch_document", "fail"]
        # PII is redacted on input (the default policy) before the server sees it.
        assert result.content[0].text == "write to [EMAIL_1]"  # type: ignore[union-attr]
        assert [c.arguments for c in mock_mcp.calls()] == [{"text": "write to [EMAIL_1]"}]
        [row] = mcp_records(gateway.app)
        assert (row["outcome"], row["tool_name"], row["status_code"]) == ("ok", "echo", 200)
        assert row["provider"] == "mock" and row["trace_id"] == TRACE
        assert row["session_id"] == "run-7" and row["run_id"].startswith("s-")
        assert orjson.loads(row["details"])["method"] == "tools/call"
        assert gateway.app.services is not None
        prompt, response = gateway.app.services.trail.decrypt(row)
        assert orjson.loads(prompt or b"") == {
            "name": "echo",
            "arguments": {"text": "write to [EMAIL_1]"},
        }
        assert b"[EMAIL_1]" in (response or b"")


async def test_refuses_a_caller_without_a_valid_key(tmp_path, mock_mcp, server_settings):
    with serving(mcp_settings(tmp_path, server_settings)) as gateway:
        with pytest.raises(Exception):  # noqa: B017 (the SDK's error type is its business)
            async with mcp_client(gateway.url(), None) as client:
                await client.list_tools()
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                gateway.url(),
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"Authorization": "Bearer sv-dev-not-a-key"},
            )
            unknown = await http.post(gateway.url("nope"), json={}, headers={"x-api-key": "x"})
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["error"]["code"] == -32001
        assert unknown.status_code == 404
        assert mock_mcp.calls() == []
        refused = mcp_records(gateway.app)
        assert refused and {r["outcome"] for r in refused} == {"unauthorized"}
        assert {r["status_code"] for r in refused} == {401}


async def test_a_key_lists_and_calls_only_the_tools_it_may_use(tmp_path, mock_mcp, mock_mcp_server):
    limited = McpServerSettings(name="mock", url=mock_mcp_server[1], key_tools={"agent": ("ec*",)})
    with serving(mcp_settings(tmp_path, limited), key_name="agent") as gateway:
        async with mcp_client(gateway.url(), gateway.key) as client:
            tools = await client.list_tools()
            with pytest.raises(MCPError) as refused:
                await client.call_tool("fail", {"text": "x"})
        assert [t.name for t in tools.tools] == ["echo"]
        assert refused.value.code == TOOL_NOT_ALLOWED
        assert mock_mcp.calls() == []
        [row] = mcp_records(gateway.app)
        assert (row["outcome"], row["error_code"]) == ("rejected", "tool_not_allowed")


async def test_a_blocked_call_never_reaches_the_server(tmp_path, mock_mcp, server_settings):
    with serving(mcp_settings(tmp_path, server_settings)) as gateway:
        async with mcp_client(gateway.url(), gateway.key) as client:
            with pytest.raises(MCPError) as blocked:
                await client.call_tool("echo", {"text": f"deploy with {AWS_KEY}"})
        assert blocked.value.code == GUARDRAIL_BLOCKED
        assert blocked.value.data["code"] == "guardrail_violation"
        assert "AWS_ACCESS_KEY" in " ".join(blocked.value.data["kinds"])
        assert AWS_KEY not in blocked.value.message
        assert mock_mcp.stats() == {}
        [row] = mcp_records(gateway.app)
        assert (row["outcome"], row["error_code"]) == ("blocked", "guardrail_violation")
        assert gateway.app.services is not None
        prompt, _ = gateway.app.services.trail.decrypt(row)
        assert prompt is not None and AWS_KEY.encode() not in prompt  # kept masked


async def test_an_injection_in_a_tool_result_is_screened_before_the_caller_sees_it(
    tmp_path, mock_mcp, server_settings
):
    rules = (
        {"name": "secrets", "detector": "secrets", "action": "block"},
        {
            "name": "tool-injection",
            "detector": "prompt_injection",
            "action": "block",
            "direction": "output",
        },
    )
    settings = replace(
        mcp_settings(tmp_path, server_settings), guardrails=GuardrailSettings(rules=rules)
    )
    with serving(settings) as gateway:
        async with mcp_client(gateway.url(), gateway.key) as client:
            with pytest.raises(MCPError) as blocked:
                await client.call_tool("fetch_document", {"url": "https://example.com/q3"})
        assert blocked.value.code == GUARDRAIL_BLOCKED
        assert blocked.value.data["rules"] == ["tool-injection"]
        assert mock_mcp.stats() == {"tools/call:fetch_document": 1}  # it ran; its answer stopped
        [row] = mcp_records(gateway.app)
        assert (row["outcome"], row["error_code"]) == ("blocked", "guardrail_violation")
        [found] = [e for e in orjson.loads(row["guardrails"]) if e["rule"] == "tool-injection"]
        assert (found["direction"], found["outcome"]) == ("output", "blocked")
        assert gateway.app.services is not None
        _, kept = gateway.app.services.trail.decrypt(row)
        assert kept is not None and b"Ignore all previous instructions" not in kept


async def test_a_tool_error_and_a_protocol_error_are_recorded_apart(
    tmp_path, mock_mcp, server_settings
):
    with serving(mcp_settings(tmp_path, server_settings)) as gateway:
        async with mcp_client(gateway.url(), gateway.key) as client:
            failed = await client.call_tool("fail", {"text": "x"})
            with pytest.raises(MCPError) as protocol:
                await client.call_tool("no_such_tool", {})
        assert failed.is_error is True  # a failed tool is a successful JSON-RPC answer
        assert protocol.value.code == -32602  # the server's own error, passed on
        tool_error, jsonrpc_error = mcp_records(gateway.app)
        assert (tool_error["status_code"], tool_error["outcome"]) == (200, "tool_error")
        assert tool_error["error_code"] is None
        assert orjson.loads(tool_error["attempts"])[0]["is_error"] is True
        assert (jsonrpc_error["status_code"], jsonrpc_error["outcome"]) == (200, "provider_error")
        assert jsonrpc_error["error_code"] == "jsonrpc:-32602"
        assert orjson.loads(jsonrpc_error["attempts"])[0]["jsonrpc_error"] == -32602


async def test_resource_reads_and_prompts_are_recorded(tmp_path, mock_mcp, server_settings):
    with serving(mcp_settings(tmp_path, server_settings)) as gateway:
        async with mcp_client(gateway.url(), gateway.key) as client:
            resource = await client.read_resource("mock://readme")
            prompt = await client.get_prompt("greeting", {"name": "Ada"})
        assert "echo" in resource.contents[0].text  # type: ignore[union-attr]
        assert prompt.messages[0].content.text == "Say hello to Ada."  # type: ignore[union-attr]
        methods = [orjson.loads(r["details"])["method"] for r in mcp_records(gateway.app)]
        assert methods == ["resources/read", "prompts/get"]
        assert mock_mcp.stats() == {"resources/read:mock://readme": 1, "prompts/get:greeting": 1}


async def test_nothing_is_forwarded_when_the_store_cannot_record(
    tmp_path, mock_mcp, server_settings
):
    settings = mcp_settings(tmp_path, server_settings, sqlite_busy_timeout_ms=100)
    with serving(settings) as gateway:
        async with mcp_client(gateway.url(), gateway.key) as client:
            await client.call_tool("echo", {"text": "first"})
            locker = sqlite3.connect(tmp_path / "data" / "signalvault.db", isolation_level=None)
            locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
            try:
                with pytest.raises(MCPError) as refused:
                    await client.call_tool("echo", {"text": "second"})
            finally:
                locker.execute("ROLLBACK")
                locker.close()
        assert refused.value.code == STORE_UNAVAILABLE
        assert [c.arguments["text"] for c in mock_mcp.calls()] == ["first"]


async def test_a_restarted_upstream_server_is_reconnected(tmp_path):
    """The upstream forgets the gateway's MCP session when it restarts; the next call opens a
    new one instead of failing until the gateway restarts too."""
    first = BackgroundServer(MockMcp().http_app()).start()
    port = first.port
    upstream = McpServerSettings(name="mock", url=f"http://127.0.0.1:{port}/mcp")
    with serving(mcp_settings(tmp_path, upstream)) as gateway:
        async with mcp_client(gateway.url(), gateway.key) as client:
            await client.call_tool("echo", {"text": "before"})
            stop_now(first)
            with pytest.raises(MCPError) as down:
                await client.call_tool("echo", {"text": "while down"})
            restarted = MockMcp()
            second = BackgroundServer(restarted.http_app(), port=port).start()
            try:
                after = await client.call_tool("echo", {"text": "after"})
            finally:
                stop_now(second)
        assert down.value.code == UPSTREAM_UNAVAILABLE
        assert after.content[0].text == "after"  # type: ignore[union-attr]
        assert [c.arguments["text"] for c in restarted.calls()] == ["after"]
        outcomes = [(r["outcome"], r["error_code"]) for r in mcp_records(gateway.app)]
        assert outcomes == [("ok", None), ("provider_error", "upstream_unavailable"), ("ok", None)]


def stop_now(server: BackgroundServer) -> None:
    """Stop without waiting for the gateway's open upstream stream to end (a crash, in effect)."""
    server._server.force_exit = True
    server.stop()
