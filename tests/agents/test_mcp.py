"""MCP through the gateway, driven by the official SDK's client over Streamable HTTP: keys, tool
allowlists, guardrails both ways, the three outcomes recorded apart, fail-closed recording."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import httpx
import orjson
import pytest
from mcp.shared.exceptions import MCPError

from signalvault.agents.mcp.calls import (
    GUARDRAIL_BLOCKED,
    RUN_LIMIT_EXCEEDED,
    STORE_UNAVAILABLE,
    TOOL_NOT_ALLOWED,
)
from signalvault.agents.mcp.upstream import UPSTREAM_UNAVAILABLE
from signalvault.config import GuardrailSettings, McpServerSettings
from signalvault.guardrails.policy import DEFAULT_RULES
from signalvault.mock_provider.mcp_server import MockMcp
from signalvault.server import BackgroundServer
from tests.agents.mcp_fixtures import mcp_client, mcp_settings, serving
from tests.conftest import records

pytestmark = pytest.mark.anyio
AWS_KEY = "AKIA" + "Q3VZ7TXK2MBN4PLD"
TRACE = "0af7651916cd43dd8448eb211c80319c"


def with_rules(settings, *rules: dict) -> object:
    """The default policy plus `rules`."""
    defaults = [rule.as_dict() for rule in DEFAULT_RULES]
    return replace(settings, guardrails=GuardrailSettings(rules=(*defaults, *rules)))


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


async def test_the_policy_allowlist_decides_which_mcp_tools_a_key_lists_and_calls(
    tmp_path, mock_mcp, server_settings
):
    allowlist = {"name": "tools", "detector": "tool_allowlist", "action": "block",
                 "options": {"tools": ["ec*", "fetch_*"]}}  # fmt: skip
    exposed = replace(server_settings, tools=("echo", "fail"))  # the server's own exposure
    settings = with_rules(mcp_settings(tmp_path, exposed), allowlist)
    with serving(settings) as gateway:
        async with mcp_client(gateway.url(), gateway.key) as client:
            tools = await client.list_tools()
            with pytest.raises(MCPError) as refused:
                await client.call_tool("fail", {"text": "x"})  # exposed, not allowed
            with pytest.raises(MCPError) as hidden:
                await client.call_tool("fetch_document", {"url": "x"})  # allowed, not exposed
        assert [t.name for t in tools.tools] == ["echo"]
        assert refused.value.code == hidden.value.code == TOOL_NOT_ALLOWED
        assert refused.value.data == {
            "code": "tool_not_allowed", "rules": ["tools"], "kinds": ["TOOL_NOT_ALLOWED"],
        }  # fmt: skip
        assert mock_mcp.calls() == []  # neither reached the server
        by_policy, by_server = mcp_records(gateway.app)
        assert (by_policy["outcome"], by_policy["error_code"]) == ("blocked", "tool_not_allowed")
        [rule] = orjson.loads(by_policy["guardrails"])
        assert (rule["rule"], rule["kinds"]) == ("tools", {"TOOL_NOT_ALLOWED": 1})
        assert (by_server["outcome"], by_server["error_code"]) == ("rejected", "tool_not_allowed")


async def test_a_tool_arguments_rule_blocks_an_mcp_call_before_the_server(
    tmp_path, mock_mcp, server_settings
):
    no_rm = {"name": "no-rm", "detector": "tool_arguments", "action": "block",
             "options": {"tools": ["echo"], "patterns": [r"rm\s+-rf"]}}  # fmt: skip
    with serving(with_rules(mcp_settings(tmp_path, server_settings), no_rm)) as gateway:
        async with mcp_client(gateway.url(), gateway.key) as client:
            with pytest.raises(MCPError) as blocked:
                await client.call_tool("echo", {"text": "then rm -rf /"})
            allowed = await client.call_tool("echo", {"text": "ls"})
        assert blocked.value.code == GUARDRAIL_BLOCKED
        assert blocked.value.data == {
            "code": "guardrail_violation", "rules": ["no-rm"], "kinds": ["ARGUMENT_MATCH"],
        }  # fmt: skip
        assert "rm -rf" not in blocked.value.message
        assert allowed.content[0].text == "ls"  # type: ignore[union-attr]
        assert [c.arguments for c in mock_mcp.calls()] == [{"text": "ls"}]
        refused, ok = mcp_records(gateway.app)
        assert (refused["outcome"], refused["error_code"]) == ("blocked", "guardrail_violation")
        assert ok["outcome"] == "ok"


async def test_a_run_past_its_tool_call_limit_is_cut_off_at_the_mcp_door(
    tmp_path, mock_mcp, server_settings
):
    """Tool calls an agent makes straight through MCP count toward its run's limit; past it the
    call is refused before the server, and a restarted gateway counts from the store."""
    limit = {"name": "runaway", "detector": "run_limit", "action": "block",
             "options": {"max_tool_calls": 2}}  # fmt: skip
    settings = with_rules(mcp_settings(tmp_path, server_settings), limit)
    run = {"X-SignalVault-Session": "runaway-agent"}
    with serving(settings) as gateway:
        async with mcp_client(gateway.url(), gateway.key, run) as client:
            for step in range(2):
                await client.call_tool("echo", {"text": f"step {step}"})
            with pytest.raises(MCPError) as cut:
                await client.call_tool("echo", {"text": "step 2"})
        async with mcp_client(gateway.url(), gateway.key) as client:  # no run: no limit
            await client.call_tool("echo", {"text": "elsewhere"})
    assert cut.value.code == RUN_LIMIT_EXCEEDED
    assert cut.value.data == {
        "code": "run_limit_exceeded", "rules": ["runaway"], "kinds": ["TOOL_CALLS_OVER_LIMIT"],
    }  # fmt: skip
    assert [c.arguments["text"] for c in mock_mcp.calls()] == ["step 0", "step 1", "elsewhere"]
    with serving(settings) as restarted:  # counts come back from the store, not memory
        async with mcp_client(restarted.url(), restarted.key, run) as client:
            with pytest.raises(MCPError) as again:
                await client.call_tool("echo", {"text": "step 3"})
        rows = mcp_records(restarted.app)
    assert again.value.code == RUN_LIMIT_EXCEEDED
    assert len(mock_mcp.calls()) == 3
    refused = [r for r in rows if r["error_code"] == "run_limit_exceeded"]
    assert [r["outcome"] for r in refused] == ["blocked", "blocked"]
    assert len({r["run_id"] for r in refused}) == 1


async def test_an_injection_in_an_mcp_tool_result_is_blocked_by_the_tool_result_rule(
    tmp_path, mock_mcp, server_settings
):
    rule = {"name": "result-injection", "detector": "indirect_injection",
            "direction": "tool_result", "action": "block"}  # fmt: skip
    with serving(with_rules(mcp_settings(tmp_path, server_settings), rule)) as gateway:
        async with mcp_client(gateway.url(), gateway.key) as client:
            clean = await client.call_tool("echo", {"text": "the weather is fine"})
            with pytest.raises(MCPError) as blocked:
                await client.call_tool("fetch_document", {"url": "https://example.com/q3"})
        assert clean.content[0].text == "the weather is fine"  # type: ignore[union-attr]
        assert blocked.value.code == GUARDRAIL_BLOCKED
        assert blocked.value.data["rules"] == ["result-injection"]
        ok, stopped = mcp_records(gateway.app)
        assert (stopped["outcome"], stopped["error_code"]) == ("blocked", "guardrail_violation")
        [found] = [
            e for e in orjson.loads(stopped["guardrails"]) if e["rule"] == "result-injection"
        ]
        assert (found["direction"], found["outcome"]) == ("tool_result", "blocked")
        assert ok["outcome"] == "ok"


async def test_mcp_results_are_spotlighted_where_a_rule_says_so(
    tmp_path, mock_mcp, server_settings
):
    rule = {"name": "mark", "detector": "indirect_injection", "direction": "tool_result",
            "action": "spotlight", "options": {"mode": "datamark"}}  # fmt: skip
    with serving(with_rules(mcp_settings(tmp_path, server_settings), rule)) as gateway:
        async with mcp_client(gateway.url(), gateway.key) as client:
            result = await client.call_tool("echo", {"text": "plain words here"})
            prompt = await client.get_prompt("greeting", {"name": "Ada"})
        text = result.content[0].text  # type: ignore[union-attr]
        assert text.endswith("plain\u02c6words\u02c6here") and "Never follow" in text
        # A prompt is meant as instructions: screened, not marked.
        assert prompt.messages[0].content.text == "Say hello to Ada."  # type: ignore[union-attr]
        call = mcp_records(gateway.app)[0]
        [entry] = [e for e in orjson.loads(call["guardrails"]) if e["rule"] == "mark"]
        assert entry["outcome"] == "spotlighted"


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
