"""OpenTelemetry out: spans with the GenAI conventions reach a collector (a local receiver decoding
OTLP protobuf), carry the caller's trace, hold no content unless asked, and a dead collector
costs requests nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from signalvault.agents.telemetry.ids import span_id_of, trace_id_of
from signalvault.config import McpServerSettings, TelemetrySettings
from tests.agents.mcp_fixtures import mcp_client, serving
from tests.agents.otlp_receiver import Receiver, attributes, refused_endpoint
from tests.conftest import make_settings, records, running_gateway

pytestmark = pytest.mark.anyio
TRACE, CALLER_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello there"}]}
CANARY = "canary-tool-argument-51d3e8"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    collector = Receiver().start()
    yield collector
    collector.stop()


def telemetry(endpoint: str, **options: object) -> TelemetrySettings:
    chosen: dict[str, object] = {
        "export_interval_seconds": 0.05,
        "timeout_seconds": 1.0,
        "shutdown_timeout_seconds": 1.0,
        **options,
    }
    return TelemetrySettings(otlp_endpoint=endpoint, **chosen)  # type: ignore[arg-type]


async def test_a_model_call_becomes_a_genai_span_in_the_callers_trace(
    tmp_path, mock_provider, mock, receiver
):
    settings = replace(
        make_settings(tmp_path, mock_provider[1]), telemetry=telemetry(receiver.endpoint)
    )
    async with running_gateway(settings) as (_, client, key):
        traceparent = f"00-{TRACE}-{CALLER_SPAN}-01"
        answer = await client.post(
            "/v1/chat/completions",
            json=CHAT,
            headers={"Authorization": f"Bearer {key}", "traceparent": traceparent},
        )
        assert answer.status_code == 200
        record_id = answer.headers["x-signalvault-request-id"]
        receiver.wait_for(lambda: receiver.spans)
    [span] = receiver.spans
    assert span.trace_id.hex() == TRACE and span.parent_span_id.hex() == CALLER_SPAN
    assert span.span_id.hex() == span_id_of(record_id)
    found = attributes(span)
    assert found["gen_ai.operation.name"] == "chat"
    assert found["gen_ai.provider.name"] == found["gen_ai.system"] == "openai"
    assert found["gen_ai.request.model"] == "gpt-4o-mini"
    assert found["gen_ai.response.model"] == "gpt-4o-mini"
    assert found["gen_ai.usage.input_tokens"] > 0 and found["gen_ai.usage.output_tokens"] > 0
    assert found["server.address"] == "127.0.0.1" and found["signalvault.record_id"] == record_id
    assert span.name == "chat gpt-4o-mini"
    # The provider got a traceparent naming the gateway's span as its parent.
    sent = mock.recent_requests()[-1]["headers"]["traceparent"]
    assert sent == f"00-{TRACE}-{span_id_of(record_id)}-01"


async def test_a_request_without_traceparent_still_sends_one_upstream(
    tmp_path, mock_provider, mock
):
    async with running_gateway(make_settings(tmp_path, mock_provider[1])) as (_, client, key):
        answer = await client.post(
            "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"}
        )
    record_id = answer.headers["x-signalvault-request-id"]
    version, trace, span, flags = mock.recent_requests()[-1]["headers"]["traceparent"].split("-")
    assert (version, flags, span) == ("00", "01", span_id_of(record_id))
    assert len(trace) == 32 and trace != "0" * 32


@pytest.mark.parametrize("capture_content", [False, True])
async def test_an_mcp_call_becomes_an_execute_tool_span(
    tmp_path, mock_mcp, mock_mcp_server, receiver, capture_content
):
    settings = replace(
        make_settings(tmp_path, "http://127.0.0.1:9/v1"),
        telemetry=telemetry(receiver.endpoint, capture_content=capture_content),
        mcp_servers=(McpServerSettings(name="mock", url=mock_mcp_server[1]),),
    )
    with serving(settings) as gateway:
        async with mcp_client(gateway.url(), gateway.key, {"X-SignalVault-Session": "s1"}) as c:
            await c.call_tool("echo", {"text": CANARY})
        receiver.wait_for(lambda: receiver.spans)
        [row] = [r for r in records(gateway.app) if r["kind"] == "mcp_call"]
    [span] = receiver.spans
    found = attributes(span)
    assert span.name == "execute_tool echo"
    assert found["gen_ai.operation.name"] == "execute_tool"
    assert found["gen_ai.tool.name"] == "echo" and found["mcp.method.name"] == "tools/call"
    assert found["gen_ai.conversation.id"] == "s1" and found["signalvault.run_id"] == row["run_id"]
    assert span.span_id.hex() == span_id_of(row["id"])
    carried = any(CANARY.encode() in body for body in receiver.bodies)
    assert carried is capture_content
    if capture_content:
        assert CANARY in found["gen_ai.tool.call.arguments"]


async def test_a_refused_collector_costs_requests_nothing(tmp_path, mock_provider, mock):
    settings = replace(
        make_settings(tmp_path, mock_provider[1]), telemetry=telemetry(refused_endpoint())
    )
    async with running_gateway(settings) as (_, client, key):
        for _ in range(5):
            answer = await client.post(
                "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"}
            )
            assert answer.status_code == 200
        assert mock.stats()["total"] == 5


async def test_a_collector_that_never_answers_neither_blocks_requests_nor_shutdown(
    tmp_path, mock_provider, mock, receiver
):
    receiver.hold()
    settings = replace(
        make_settings(tmp_path, mock_provider[1]),
        telemetry=telemetry(receiver.endpoint, queue_size=2, batch_size=1, timeout_seconds=30.0),
    )
    async with running_gateway(settings) as (app, client, key):
        headers = {"Authorization": f"Bearer {key}"}
        first = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
        receiver.wait_for(lambda: receiver.held == 1)  # the exporter is stuck on its first batch
        for _ in range(6):  # served while the collector holds the exporter
            answer = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
            assert answer.status_code == 200
        metrics = (await client.get("/metrics")).text
    assert first.status_code == 200 and mock.stats()["total"] == 7
    # Two spans fit in the queue behind the stuck one; the rest were dropped and counted.
    assert 'signalvault_telemetry_spans_total{outcome="dropped"} 4.0' in metrics
    # Shutdown returned (within shutdown_timeout_seconds) although the collector never answered.
    assert receiver.held == 1 and app.telemetry is None


def test_a_tool_call_event_hangs_under_its_model_call():
    """The hook for agent events: a `tool_call` record observed through the trail becomes an
    `execute_tool` span whose parent is the span of the model call it came from."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from signalvault.agents.telemetry.exporter import SpanExport
    from signalvault.trail.audit import TOOL_CALL, Interaction, new_record_id
    from signalvault.trail.linked import ToolEvent

    memory = InMemorySpanExporter()
    counted: list[tuple[str, int]] = []
    export = SpanExport(
        telemetry("http://127.0.0.1:9"), {}, lambda o, n: counted.append((o, n)), memory
    )
    model_call = Interaction(api="chat", run_id="s-abc")
    tool_call = ToolEvent(
        TOOL_CALL, model_call, "call_42", new_record_id(), 1.0, model_call.id, "get_weather"
    )
    export.observe_event(tool_call)
    export.shutdown()
    [span] = memory.get_finished_spans()
    assert span.name == "execute_tool get_weather"
    assert span.attributes["gen_ai.tool.call.id"] == "call_42"
    assert span.parent is not None and f"{span.parent.span_id:016x}" == span_id_of(model_call.id)
    assert span.context.trace_id == int(trace_id_of(model_call), 16)  # the run's trace
    assert counted == [("exported", 1)]


async def test_a_tool_loops_calls_and_results_become_spans_without_content(
    tmp_path, mock_provider, mock, receiver
):
    from tests.agents.conftest import openai_for
    from tests.agents.loops import LOOPS

    settings = replace(
        make_settings(tmp_path, mock_provider[1]), telemetry=telemetry(receiver.endpoint)
    )
    async with running_gateway(settings) as (_, client, key):
        headers = {"traceparent": f"00-{TRACE}-{CALLER_SPAN}-01"}
        step = await LOOPS["chat"](
            openai_for(client, key), stream=False, result=CANARY, headers=headers
        )
        receiver.wait_for(lambda: len(receiver.spans) >= 4)
    tools = [s for s in receiver.spans if attributes(s).get("gen_ai.tool.call.id") == step.call_id]
    assert sorted(attributes(s)["signalvault.event"] for s in tools) == ["tool_call", "tool_result"]
    assert all(s.trace_id.hex() == TRACE for s in tools)
    assert all(CANARY not in str(attributes(s)) for s in receiver.spans)
