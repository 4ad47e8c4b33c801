"""MCP calls as events of an agent's run (SPEC §7b): an agent using the official OpenAI SDK for its
model calls and the official MCP SDK for its tools, with one session, gets one run whose tree
has each MCP call at its place in time, under the tool call it carries out, with its outcome."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import openai
import orjson
import pytest
from mcp.shared.exceptions import MCPError

from signalvault.agents.runs import run_detail, run_rows
from signalvault.app import GatewayApp
from signalvault.config import McpServerSettings
from tests.agents.mcp_fixtures import mcp_client, serving
from tests.conftest import make_settings, records

pytestmark = pytest.mark.anyio
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
    for name in ("echo", "fail")
]


def model_client(port: int, key: str) -> openai.AsyncOpenAI:
    """The official OpenAI SDK against the gateway's socket (closed by the test: `async with`)."""
    return openai.AsyncOpenAI(api_key=key, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)


def run_of(app: GatewayApp, run_id: str) -> dict[str, Any]:
    assert app.services is not None
    app.services.store.flush()
    return run_detail(run_rows(app.services.store, run_id))


async def agent_loop(
    model: openai.AsyncOpenAI, mcp_url: str, key: str, session: dict[str, str]
) -> None:
    """The model asks for `echo`; the agent runs it through the gateway's MCP door (and, on its
    own, a failing tool and an unknown one), then sends the result back to the model."""
    messages: list[Any] = [
        {"role": "user", "content": 'say hi [[mock:tool=echo {"text": "hi there"}]]'}
    ]
    first = await model.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=TOOLS, extra_headers=session
    )
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    # The agent carries the call out through the gateway's MCP door; its tools also call
    # a failing tool and an unknown one (no model call asked for those).
    async with mcp_client(mcp_url, key, session) as tools:
        done = await tools.call_tool("echo", orjson.loads(call.function.arguments))
        failed = await tools.call_tool("fail", {"text": "x"})
        with pytest.raises(MCPError):
            await tools.call_tool("no_such_tool", {})
    assert failed.is_error is True
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": done.content[0].text},  # type: ignore[union-attr]
    ]
    await model.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=TOOLS, extra_headers=session
    )


async def test_mcp_calls_join_the_run_of_the_model_calls_in_place(
    tmp_path, mock, mock_provider, mock_mcp, mock_mcp_server
):
    server = McpServerSettings(name="mock", url=mock_mcp_server[1])
    settings = replace(make_settings(tmp_path, mock_provider[1]), mcp_servers=(server,))
    session = {"X-SignalVault-Session": "agent-run-1"}
    with serving(settings) as gateway:
        async with model_client(gateway.port, gateway.key) as model:
            await agent_loop(model, gateway.url(), gateway.key, session)
        first_record = next(r for r in records(gateway.app) if r["kind"] == "interaction")
        run = run_of(gateway.app, first_record["run_id"])

    assert (run["session"], run["model_calls"], run["tool_calls"]) == ("agent-run-1", 2, 1)
    shape = [(e["type"], e["tool_name"], e["depth"]) for e in run["events"]]
    assert shape == [
        ("model_call", None, 0),
        ("tool_call", "echo", 1),
        ("mcp_call", "echo", 2),  # under the call it carried out, before the result came back
        ("mcp_call", "fail", 0),  # no model call asked for it: a root, at its time
        ("mcp_call", "no_such_tool", 0),
        ("tool_result", "echo", 2),
        ("model_call", None, 3),
    ]
    _, tool_call, echo, fail, unknown, _, _ = run["events"]
    assert echo["parent_id"] == tool_call["id"]
    # The three outcomes apart: HTTP status, JSON-RPC error, the tool's own isError.
    assert (echo["outcome"], echo["mcp"]) == (
        "ok",
        {"http_status": 200, "jsonrpc_error": None, "is_error": False, "error_code": None},
    )
    assert (fail["outcome"], fail["mcp"]["is_error"], fail["mcp"]["jsonrpc_error"]) == (
        "tool_error",
        True,
        None,
    )
    assert (unknown["outcome"], unknown["mcp"]["jsonrpc_error"]) == ("provider_error", -32602)
    assert unknown["mcp"]["error_code"] == "jsonrpc:-32602" and unknown["mcp"]["http_status"] == 200
    assert [e["at"] for e in run["events"][2:5]] == sorted(e["at"] for e in run["events"][2:5])
    assert b"hi there" not in orjson.dumps(run)  # metadata only


async def test_an_mcp_call_with_only_the_trace_joins_the_session_run_of_that_trace(
    tmp_path, mock, mock_provider, mock_mcp, mock_mcp_server
):
    """A model call sent with a session and a traceparent; the agent's MCP client sends only the
    traceparent (its framework propagates traces, not our header): same run."""
    server = McpServerSettings(name="mock", url=mock_mcp_server[1])
    settings = replace(make_settings(tmp_path, mock_provider[1]), mcp_servers=(server,))
    traceparent = {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}
    with serving(settings) as gateway:
        async with model_client(gateway.port, gateway.key) as model:
            await model.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hello"}],
                extra_headers={**traceparent, "X-SignalVault-Session": "s-42"},
            )
        async with mcp_client(gateway.url(), gateway.key, traceparent) as tools:
            await tools.call_tool("echo", {"text": "x"})
        rows = records(gateway.app)
        runs = {r["kind"]: r["run_id"] for r in rows if r["kind"] in ("interaction", "mcp_call")}
        assert runs["interaction"] is not None and runs["mcp_call"] == runs["interaction"]
