"""What MCP through the gateway and span export cost (not a test; run on a quiet machine).

1. `tools/call echo` from the SDK's client: straight to the mock MCP server, then through the
   gateway (SDK server, key check, guardrails both ways, write-ahead record, upstream client),
   alternating rounds in one process; mean and median milliseconds per call.
2. The SDK's stateless Streamable HTTP server alone, called in-process as an ASGI app with a
   trivial handler, against a hand-written JSON-RPC answer of the same request: what choosing
   the SDK for the server side costs per request.
3. `SpanExport.observe` (build one span and queue it): the telemetry cost on the request path.

    python bench/mcp_overhead.py [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
import orjson
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from signalvault.agents.telemetry.exporter import ProviderInfo, SpanExport
from signalvault.app import create_app
from signalvault.config import McpServerSettings, Settings, StoreSettings, TelemetrySettings
from signalvault.crypto.gateway_keys import GatewayKey
from signalvault.mock_provider.mcp_server import MockMcp
from signalvault.server import BackgroundServer
from signalvault.trail.audit import OK, Interaction


async def timed_calls(url: str, key: str | None, calls: int) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        await client.call_tool("echo", {"text": "warm up"})
        times = []
        for i in range(calls):
            started = time.perf_counter()
            await client.call_tool("echo", {"text": f"hello {i}"})
            times.append((time.perf_counter() - started) * 1000.0)
        return times


def end_to_end(calls: int) -> None:
    mock_server = BackgroundServer(MockMcp().http_app()).start()
    upstream = f"http://127.0.0.1:{mock_server.port}/mcp"
    data = Path(tempfile.mkdtemp())
    settings = Settings(
        store=StoreSettings(data_dir=data),
        mcp_servers=(McpServerSettings(name="mock", url=upstream),),
    )
    app = create_app(settings)
    gateway = BackgroundServer(app).start()
    assert app.services is not None
    _, key = app.services.keyring.create(name="bench", environment="dev")
    direct: list[float] = []
    through: list[float] = []
    for _ in range(3):  # alternate, so machine noise hits both alike
        direct += asyncio.run(timed_calls(upstream, None, calls // 3))
        through += asyncio.run(
            timed_calls(f"http://127.0.0.1:{gateway.port}/mcp/mock", key, calls // 3)
        )
    gateway.stop()
    mock_server.stop()
    for name, times in (("direct to the MCP server", direct), ("through the gateway", through)):
        print(
            f"{name:28s} mean {statistics.mean(times):6.2f} ms  "
            f"median {statistics.median(times):6.2f} ms  ({len(times)} calls)"
        )
    added = statistics.median(through) - statistics.median(direct)
    print(f"{'gateway adds (median)':28s} {added:6.2f} ms")


async def sdk_server_alone(requests: int) -> None:
    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> dict[str, Any]:
        return {"content": [{"type": "text", "text": "ok"}], "isError": False}

    manager = StreamableHTTPSessionManager(
        Server("bench", on_call_tool=call_tool), stateless=True, json_response=True
    )
    body = orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "x", "arguments": {}},
        }
    )
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "headers": [
            (b"content-type", b"application/json"),
            (b"accept", b"application/json, text/event-stream"),
            (b"mcp-protocol-version", b"2025-06-18"),
        ],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    sent: list[Any] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def hand_written(scope: Any, receive: Any, send: Any) -> None:
        message = orjson.loads((await receive())["body"])
        result = {"content": [{"type": "text", "text": "ok"}], "isError": False}
        answer = orjson.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": answer})

    async with manager.run():
        for name, handler in (
            ("SDK stateless server", manager.handle_request),
            ("hand-written JSON-RPC", hand_written),
        ):
            for _ in range(50):
                await handler(scope, receive, send)
            started = time.perf_counter()
            for _ in range(requests):
                await handler(scope, receive, send)
            per = (time.perf_counter() - started) / requests * 1e6
            print(f"{name:28s} {per:8.1f} µs per tools/call (in-process ASGI, no network)")
    assert sent[0]["status"] == 200, sent[0]


class _Nothing(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def span_cost(spans: int) -> None:
    export = SpanExport(
        TelemetrySettings(otlp_endpoint="http://127.0.0.1:9", queue_size=spans * 2, batch_size=512),
        {"openai": ProviderInfo("openai", "https://api.openai.com/v1")},
        lambda outcome, n: None,
        exporter=_Nothing(),
    )
    key = GatewayKey("k", "n", "p", "dev", "sv-", (), None, None, None, None, 0.0, "b")
    interactions = []
    for _ in range(spans):
        interaction = Interaction(api="chat", key=key, provider="openai", model_requested="gpt-4o")
        interaction.outcome, interaction.prompt_tokens, interaction.completion_tokens = OK, 12, 30
        interactions.append(interaction)
    started = time.perf_counter()
    for interaction in interactions:
        export.observe(interaction)
    per = (time.perf_counter() - started) / spans * 1e6
    export.shutdown()
    print(f"{'SpanExport.observe':28s} {per:8.1f} µs per span (build + queue)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    end_to_end(args.calls)
    asyncio.run(sdk_server_alone(2000))
    span_cost(20_000)


if __name__ == "__main__":
    main()
