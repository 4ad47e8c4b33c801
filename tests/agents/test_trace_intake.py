"""`POST /v1/traces`: spans from agent frameworks join the runs the gateway recorded."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from signalvault.agents.otlp import MAX_SPANS
from tests.agents.loops import LOOPS
from tests.agents.test_tool_events import decrypted, run_of
from tests.conftest import records

pytestmark = pytest.mark.anyio

TRACE = "0af7651916cd43dd8448eb211c80319c"
CANARY = "span-canary-1b7e55"


def attribute(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def protobuf_spans(*spans: Span) -> bytes:
    resource = Resource(attributes=[attribute("service.name", "weather-agent")])
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])]
    )
    return request.SerializeToString()


def tool_span(call_id: str, span_id: str = "00f067aa0ba902b7", parent: str = "") -> Span:
    return Span(
        trace_id=bytes.fromhex(TRACE),
        span_id=bytes.fromhex(span_id),
        parent_span_id=bytes.fromhex(parent),
        name="execute_tool get_weather",
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=1,  # implausible: the record keeps the time it arrived
        end_time_unix_nano=250_000_001,
        status=Status(code=Status.STATUS_CODE_OK),
        attributes=[
            attribute("gen_ai.operation.name", "execute_tool"),
            attribute("gen_ai.tool.name", "get_weather"),
            attribute("gen_ai.tool.call.id", call_id),
            attribute("gen_ai.tool.call.arguments", f'{{"city": "{CANARY}"}}'),
            attribute("gen_ai.system", "openai"),  # the older name of gen_ai.provider.name
            attribute("gen_ai.usage.prompt_tokens", 12),  # older: gen_ai.usage.input_tokens
            attribute("app.note", "free text may be content"),
        ],
    )


async def post(client, key: str | None, body: bytes, media: str, **headers: str) -> Any:
    sent = {"content-type": media, **headers}
    if key is not None:
        sent["authorization"] = f"Bearer {key}"
    return await client.post("/v1/traces", content=body, headers=sent)


async def test_a_tool_span_joins_the_run_of_its_trace_under_the_gateways_call(
    oai, client, api_key, gateway, settings
):
    traceparent = f"00-{TRACE}-b7ad6b7169203331-01"
    step = await LOOPS["chat"](
        oai, stream=False, result="sunny", headers={"traceparent": traceparent}
    )
    response = await post(
        client, api_key, protobuf_spans(tool_span(step.call_id)), "application/x-protobuf"
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")

    span = next(r for r in records(gateway) if r["kind"] == "span")
    call = next(r for r in records(gateway) if r["kind"] == "tool_call")
    assert span["run_id"] == f"t-{TRACE}" == call["run_id"]
    assert span["parent_id"] == call["id"]
    assert (span["provider"], span["prompt_tokens"], span["tool_name"]) == (
        "openai",
        12,
        "get_weather",
    )
    details = orjson.loads(span["details"])
    assert details["attributes"]["resource.service.name"] == "weather-agent"
    assert details["attributes"]["gen_ai.operation.name"] == "execute_tool"
    assert details["content_attributes"] == ["app.note", "gen_ai.tool.call.arguments"]
    assert details["duration_ms"] == 250.0
    content = orjson.loads(decrypted(gateway, span["id"]))
    assert content["gen_ai.tool.call.arguments"] == f'{{"city": "{CANARY}"}}'
    run = run_of(gateway, span["run_id"])
    placed = next(e for e in run["events"] if e["type"] == "span")
    assert (placed["parent_id"], placed["depth"]) == (call["id"], 2)

    gateway.services.store.flush()
    for path in settings.store.data_dir.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


async def test_json_spans_with_a_session_join_that_sessions_run(client, api_key, gateway):
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "scope": {"name": "my.framework"},
                        "spans": [
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "EEE19B7EC3C1B174",
                                "name": "chat",
                                "kind": 3,
                                "startTimeUnixNano": "1",
                                "endTimeUnixNano": "2",
                                "attributes": [
                                    {"key": "gen_ai.request.model", "value": {"stringValue": "x"}},
                                    {"key": "gen_ai.prompt.0.content",
                                     "value": {"stringValue": CANARY}},
                                    {"key": "gen_ai.usage.input_tokens",
                                     "value": {"intValue": "7"}},
                                ],
                                "status": {"code": 2, "message": "tool failed"},
                            }
                        ],
                    }
                ]
            }
        ]
    }  # fmt: skip
    response = await post(
        client,
        api_key,
        gzip.compress(orjson.dumps(body)),
        "application/json",
        **{"content-encoding": "gzip", "x-signalvault-session": "agent-7"},
    )
    assert response.status_code == 200 and response.json() == {"partialSuccess": {}}
    (span,) = [r for r in records(gateway) if r["kind"] == "span"]
    assert span["session_id"] == "agent-7" and span["run_id"].startswith("s-")
    assert (span["outcome"], span["model_requested"], span["prompt_tokens"]) == ("error", "x", 7)
    assert CANARY not in span["details"] and "tool failed" not in span["details"]
    assert orjson.loads(span["details"])["span_kind"] == "client"


@pytest.mark.parametrize(
    ("body", "media", "status", "says"),
    [
        (b"\xff\x00garbage", "application/x-protobuf", 400, "protobuf"),
        (b"{", "application/json", 400, "not valid JSON"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "1"}]}]}]}',
         "application/json", 400, "traceId"),
        (b"{}", "text/plain", 400, "OTLP/HTTP"),
    ],
)  # fmt: skip
async def test_bad_input_gets_400_in_the_openai_shape_and_stores_nothing(
    client, api_key, gateway, body, media, status, says
):
    response = await post(client, api_key, body, media)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and says in error["message"]
    assert [r for r in records(gateway) if r["kind"] == "span"] == []


async def test_spans_need_a_gateway_key(client, gateway):
    response = await post(client, None, protobuf_spans(tool_span("x")), "application/x-protobuf")
    assert response.status_code == 401 and response.json()["error"]["type"] == (
        "authentication_error"
    )
    assert [r for r in records(gateway) if r["kind"] == "span"] == []


async def test_spans_beyond_the_limit_are_refused_as_a_partial_success(client, api_key, gateway):
    spans = [
        {"traceId": TRACE, "spanId": f"{i + 1:016x}", "name": "s"} for i in range(MAX_SPANS + 3)
    ]
    body = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})
    response = await post(client, api_key, body, "application/json")
    assert response.json()["partialSuccess"]["rejectedSpans"] == "3"
    assert sum(1 for r in records(gateway) if r["kind"] == "span") == MAX_SPANS


async def test_a_gzip_bomb_is_refused(client, api_key, settings):
    bomb = gzip.compress(b"\0" * (settings.server.max_body_bytes + 10))
    response = await post(
        client, api_key, bomb, "application/x-protobuf", **{"content-encoding": "gzip"}
    )
    assert response.status_code == 413, response.text


def test_the_otlp_parser_loads_with_the_first_spans_not_at_startup(tmp_path):
    """A gateway that is never sent spans never holds protobuf and the OTLP classes (~2 MiB)."""
    import subprocess
    import sys

    probe = f"""
import asyncio, sys
from pathlib import Path
from signalvault.app import create_app
from signalvault.config import Settings, StoreSettings
app = create_app(Settings(store=StoreSettings(data_dir=Path({str(tmp_path)!r}))))
async def main():
    await app.startup()
    await app.shutdown()
asyncio.run(main())
print("google.protobuf" in sys.modules, "signalvault.agents.otlp" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
