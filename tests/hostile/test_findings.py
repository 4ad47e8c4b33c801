"""One regression test per finding of the fuzz runs on the agent entry points and the dashboard's
forms (docs/operations.md, "Faults, as tested", lists them): each input here once got a 500."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import orjson
import pytest

from tests.conftest import make_settings, records, running_gateway

pytestmark = pytest.mark.anyio

SPAN = {"traceId": "a" * 32, "spanId": "b" * 16, "name": "execute_tool echo"}


def otlp(span: dict[str, Any] | None = None, **resource_spans: Any) -> bytes:
    scope_spans = [{"scope": {"name": "agent"}, "spans": [span or SPAN]}]
    return orjson.dumps({"resourceSpans": [{"scopeSpans": scope_spans, **resource_spans}]})


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory, mock_provider) -> Any:
    """One gateway for the cases that change nothing they do not check themselves."""
    settings = make_settings(tmp_path_factory.mktemp("findings"), mock_provider[1])
    async with running_gateway(settings) as running:
        yield running


def spans(app: Any) -> int:
    return len([row for row in records(app) if row["kind"] == "span"])


# Finding 1: OTLP/JSON fields of the wrong JSON type (an object where a list belongs, a string
# where an object belongs) raised AttributeError / TypeError / ValueError in the parser: 500.
WRONG_TYPES = {
    "status-string": otlp({**SPAN, "status": "ok"}),
    "status-list": otlp({**SPAN, "status": [2]}),
    "events-object": otlp({**SPAN, "events": {"name": "x"}}),
    "events-number": otlp({**SPAN, "events": 3}),
    "double-not-a-number": otlp(
        {**SPAN, "attributes": [{"key": "k", "value": {"doubleValue": "abc"}}]}
    ),
    "array-value-list": otlp({**SPAN, "attributes": [{"key": "k", "value": {"arrayValue": [1]}}]}),
    "array-values-object": otlp(
        {**SPAN, "attributes": [{"key": "k", "value": {"arrayValue": {"values": {"a": 1}}}}]}
    ),
    "kvlist-number": otlp({**SPAN, "attributes": [{"key": "k", "value": {"kvlistValue": 3}}]}),
    "resource-list": otlp(resource=[1]),
    "scope-string": orjson.dumps(
        {"resourceSpans": [{"scopeSpans": [{"scope": "x", "spans": []}]}]}
    ),
    "spans-number": orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": 3}]}]}),
}


@pytest.mark.parametrize("body", list(WRONG_TYPES.values()), ids=list(WRONG_TYPES))
async def test_an_otlp_field_of_the_wrong_type_is_a_400_and_records_nothing(gateway, body):
    app, c, key = gateway
    before = spans(app)
    response = await c.post(
        "/v1/traces",
        content=body,
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert spans(app) == before


async def test_a_well_typed_span_is_still_recorded(gateway):
    app, c, key = gateway
    before = spans(app)
    span = {**SPAN, "status": {"code": 1}, "events": [], "attributes": []}
    response = await c.post(
        "/v1/traces",
        content=otlp(span, resource={"attributes": []}),
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )
    assert response.status_code == 200
    assert spans(app) == before + 1


# Finding 2: GET /mcp/<name> (the Streamable HTTP transport's standalone stream) opened an SSE
# stream that never carried anything and never ended: the caller's connection was held until it
# gave up (the fuzz saw each at the 30 s client timeout). The servers are stateless; it is 405.
@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT"])
async def test_mcp_takes_post_only(tmp_path, method):
    from signalvault.config import McpServerSettings
    from signalvault.mock_provider.mcp_server import MockMcp
    from signalvault.server import BackgroundServer

    mock = BackgroundServer(MockMcp().http_app()).start()
    upstream = McpServerSettings(name="mock", url=f"http://127.0.0.1:{mock.port}/mcp")
    settings = replace(make_settings(tmp_path, "http://127.0.0.1:9/v1"), mcp_servers=(upstream,))
    try:
        async with running_gateway(settings) as (_, c, key):
            headers = {"authorization": f"Bearer {key}", "accept": "text/event-stream"}
            response = await asyncio.wait_for(c.request(method, "/mcp/mock", headers=headers), 10)
            assert response.status_code == 405
            assert response.headers["allow"] == "POST"
            assert response.json()["error"]["code"] == -32600
    finally:
        mock.stop()


# Finding 3: the control plane read a chunked body whole, whatever its size: the admin API's JSON
# without limit, the dashboard's forms up to 200 fields of 1 MB (only a `Content-Length` was
# checked). Both now stop at `[server] max_body_bytes`, announced or not: 413 in their shape.
LIMIT = 64 * 1024


def _chunks(size: int, first: bytes) -> Any:
    async def body() -> Any:
        yield first
        for _ in range(size // 65536 + 1):
            yield b"a" * 65536

    return body()


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "announced"])
@pytest.mark.parametrize(
    ("path", "content_type", "first"),
    [
        ("/api/auth/login", "application/json", b'{"email": "a@example.com", "password": "'),
        ("/login", "application/x-www-form-urlencoded", b"email=a&password="),
    ],
)
async def test_a_control_plane_body_over_the_limit_is_a_413(
    tmp_path, path, content_type, first, chunked
):
    settings = make_settings(tmp_path, "http://127.0.0.1:9/v1")
    settings = replace(settings, server=replace(settings.server, max_body_bytes=LIMIT))
    async with running_gateway(settings) as (_, c, _key):
        body = _chunks(LIMIT * 4, first) if chunked else first + b"a" * (LIMIT * 4)
        response = await c.post(path, content=body, headers={"content-type": content_type})
        assert response.status_code == 413
        if path.startswith("/api/"):
            assert response.json()["error"]["code"] == "request_too_large"


# Finding 4 (fuzz profile, /v1/responses and /v1/messages): `tools` that is not an array (a
# number) reached the tool capture, which iterated it: TypeError, 500. The readers of tool calls
# and results take a field of the wrong type as absent; the provider judges the request.
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user"}]}),
        ("/v1/responses", {"model": "gpt-4o-mini", "input": "hello"}),
        ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": []}),
    ],
)
@pytest.mark.parametrize("tools", [3, 1.5, True, "get_weather"])
async def test_tools_of_the_wrong_type_are_not_a_500(gateway, path, body, tools):
    app, c, key = gateway
    if path == "/v1/chat/completions":
        body["messages"] = [{"role": "user", "content": "hi"}]
    response = await c.post(
        path, json={**body, "tools": tools}, headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code < 500, response.text
    record_id = response.headers["x-signalvault-request-id"]
    [row] = [row for row in records(app) if row["id"] == record_id]
    assert row["status_code"] == response.status_code
    assert row["outcome"] == ("ok" if response.status_code < 400 else row["outcome"])
    assert row["outcome"] != "unknown"


# Finding 5 (test_provider_readers.py): stream events of the wrong shape from a provider
# (`"choices": 5`, a string where an object belongs, token counts as strings) raised in the
# stream assembler, the logger of record, while the answer was already going out.
HOSTILE_EVENTS = [
    ("chat", {"choices": 5}),
    ("chat", {"choices": ["x"], "model": {"name": "x"}}),
    ("chat", {"choices": [{"delta": {"tool_calls": [{"index": {}, "function": "f"}]}}]}),
    ("responses", {"type": "response.completed", "response": "done"}),
    ("responses", {"type": "response.output_item.added", "item": [], "output_index": []}),
    ("messages", {"type": "message_delta", "delta": "x", "usage": 3}),
    ("messages", {"type": "content_block_delta", "delta": {"type": "text_delta", "text": 7}}),
    ("messages", {"type": "message_start", "message": {"usage": {"input_tokens": "5"}}}),
]


@pytest.mark.parametrize(("api", "event"), HOSTILE_EVENTS)
def test_a_stream_event_of_the_wrong_shape_is_read_as_absent(api, event):
    from signalvault.gateway.wire import StreamAssembler

    assembler = StreamAssembler(api)
    assembler.feed(b"data: " + orjson.dumps(event) + b"\n\n")
    logged = orjson.loads(assembler.assembled())
    assert logged["model"] is None and logged["content"] == ""
    assert not assembler.is_broken  # readable JSON: the guardrails decide what passes


# Finding 6 (make fuzz, /v1/responses streamed): `metadata` nested just inside the request limit
# came back in the provider's `response.created` event one level deeper, past what the gateway
# reads from a provider: the stream was cut for a request the gateway had accepted. Requests now
# stop ECHO_MARGIN levels earlier than answers.
@pytest.mark.parametrize("stream", [False, True])
async def test_a_request_at_the_depth_limit_comes_back_readable(gateway, stream):
    from signalvault.gateway.safe_json import REQUEST_DEPTH

    app, c, key = gateway
    metadata: Any = "x"
    for _ in range(REQUEST_DEPTH - 2):  # the body and `metadata` take two levels
        metadata = [metadata]
    body = {"model": "gpt-4o-mini", "input": "hi", "stream": stream, "metadata": {"k": metadata}}
    content = orjson.dumps(body)
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    response = await c.post("/v1/responses", content=content, headers=headers)
    assert response.status_code == 200, response.text
    row = [r for r in records(app) if r["id"] == response.headers["x-signalvault-request-id"]]
    assert row[0]["outcome"] == "ok"
    deeper = orjson.dumps({**body, "metadata": {"k": [metadata]}})
    refused = await c.post("/v1/responses", content=deeper, headers=headers)
    assert refused.status_code == 400
    assert f"more than {REQUEST_DEPTH} deep" in refused.json()["error"]["message"]
