"""The agent entry points fuzzed like the /v1 ones (see harness.py for the property): `/mcp/<name>`
(JSON-RPC requests built from the mcp SDK's types, before the mock MCP server), `POST /v1/traces`
(OTLP/JSON and protobuf, valid then broken), and the /v1 endpoints' tool-call paths (tool calls and
results with reused ids, arguments that are not JSON, huge arguments). On top of the harness's
property: an MCP call answered with a result has exactly one `mcp_call` record whose outcome
says the same, and a trace request answered 200 recorded each span it accepted, a refused one
none."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import strategies as st

from signalvault.config import McpServerSettings
from signalvault.mock_provider.mcp_server import MockMcp
from signalvault.server import BackgroundServer
from signalvault.store import RecordFilter
from tests.hostile.agent_shapes import (
    RECORDED_METHODS,
    as_protobuf,
    chat_tool_bodies,
    mcp_bodies,
    messages_tool_bodies,
    responses_tool_bodies,
    span_count,
    trace_bodies,
)
from tests.hostile.harness import (
    PROFILE,
    Answer,
    GatewayUnderFuzz,
    HttpRequest,
    fuzz,
    gateway_under_fuzz,
)
from tests.hostile.mutations import INVALID_UTF8, json_requests

MCP_ACCEPT = b"application/json, text/event-stream"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[GatewayUnderFuzz]:
    mock = MockMcp()
    mcp_server = BackgroundServer(mock.http_app()).start()
    url = f"http://127.0.0.1:{mcp_server.port}/mcp"

    def with_mcp(settings: Any) -> Any:
        return replace(settings, mcp_servers=(McpServerSettings(name="mock", url=url),))

    try:
        with gateway_under_fuzz(tmp_path_factory.mktemp("agents"), with_mcp) as running:
            running.mcp = mock  # type: ignore[attr-defined]
            yield running
            print(f"\ngenerated requests per entry point ({PROFILE}): {dict(running.sent)}")
            running.check_forwards_recorded()
    finally:
        mcp_server.stop()


class Seen:
    """Records of some kinds created since the last look."""

    def __init__(self, gateway: GatewayUnderFuzz, kind: str) -> None:
        self._gateway, self._kind = gateway, kind
        self._known: set[str] = {row["id"] for row in self._rows()}

    def _rows(self) -> list[dict[str, Any]]:
        assert self._gateway.app.services is not None
        store = self._gateway.app.services.store
        store.flush()
        return store.list_records(RecordFilter(kinds=(self._kind,)), limit=100)

    def new(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The new records, once none is `unknown`: a call's completion is queued after its
        answer went out, so a busy machine can read the record a moment before it is final
        (as `GatewayUnderFuzz.record` waits for one record)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = [row for row in self._rows() if row["id"] not in self._known]
            if all(row["outcome"] != "unknown" for row in rows) or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        self._known |= {row["id"] for row in rows}
        return rows


# --- /mcp/<name> -----------------------------------------------------------------------------


@st.composite
def mcp_requests(draw: st.DrawFn, key: str) -> HttpRequest:
    # Params drawn from the SDK's types are odd enough as they are: half go unbroken.
    request = draw(json_requests("/mcp/mock", mcp_bodies(), key, hostile_bodies=True))
    accept = draw(st.sampled_from([MCP_ACCEPT] * 6 + [b"application/json", b"text/html", None]))
    path = draw(st.sampled_from(["/mcp/mock"] * 8 + ["/mcp/nope", "/mcp/mock/x"]))
    headers = request.headers + (((b"accept", accept),) if accept else ())
    return replace(request, path=path, headers=headers, label=f"{request.label},{path}")


def mcp_answer(answer: Answer) -> dict[str, Any] | None:
    """The JSON-RPC answer object, when the answer is one."""
    try:
        data = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def check_mcp(gateway: GatewayUnderFuzz, seen: Seen, request: HttpRequest, answers: list[Answer]):
    gateway.check(request, answers)
    rows = seen.new()
    [answer] = answers
    where = request.describe()
    try:
        sent = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        sent = None
    data = mcp_answer(answer)
    if answer.status == 401:
        assert [row["outcome"] for row in rows] == ["unauthorized"], f"{rows} <- {where}"
        return
    assert len(rows) <= 1, f"{rows} <- {where}"
    outcomes = [row["outcome"] for row in rows]
    assert "unknown" not in outcomes, f"{rows} <- {where}"
    if data is None or answer.status != 200:
        assert not rows, f"{rows} <- {where}"
        return
    method = sent.get("method") if isinstance(sent, dict) else None
    if "result" in data and method in RECORDED_METHODS:
        result = data["result"]
        expected = "tool_error" if isinstance(result, dict) and result.get("isError") else "ok"
        assert outcomes == [expected], f"{rows} {answer.body[:300]!r} <- {where}"
    elif "error" in data:
        assert set(outcomes) <= {"blocked", "rejected", "provider_error"}, f"{rows} <- {where}"
    elif "result" in data:
        assert not rows, f"{rows} <- {where}"


def test_mcp_survives_hostile_requests(gateway):
    seen = Seen(gateway, "mcp_call")
    fuzz(
        gateway,
        "/mcp/<name>",
        mcp_requests(gateway.key),
        check=lambda request, answers: check_mcp(gateway, seen, request, answers),
    )
    reached = gateway.mcp.stats()
    print(f"\nMCP calls that reached the server: {reached}")
    assert reached.get("tools/call:echo", 0) > 0  # the fuzz gets past the door, too
    # Nothing reached the server unrecorded: each call it saw is a record of a forwarded call.
    assert gateway.app.services is not None
    gateway.app.services.store.flush()
    rows = gateway.app.services.store.list_records(RecordFilter(kinds=("mcp_call",)), limit=10**6)
    forwarded = [row for row in rows if row["outcome"] in ("ok", "tool_error", "provider_error")]
    calls = sum(n for name, n in reached.items() if name.split(":")[0] in RECORDED_METHODS)
    print(f"MCP calls forwarded per the records: {len(forwarded)}; seen by the server: {calls}")
    assert calls <= len(forwarded)


# --- POST /v1/traces -------------------------------------------------------------------------


@st.composite
def trace_requests(draw: st.DrawFn, key: str) -> HttpRequest:
    """OTLP/JSON bodies mutated as /v1 bodies are, or protobuf bodies broken in their bytes."""
    body = draw(trace_bodies)
    if draw(st.booleans()):
        request = draw(json_requests("/v1/traces", st.just(body), key, deep=True))
        return replace(request, label=f"json,{request.label}")
    data = as_protobuf(body)
    how = draw(st.sampled_from(["plain"] * 3 + ["truncate", "flip", "garbage", "bad_utf8"]))
    if how == "truncate" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif how == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    elif how == "garbage":
        data = draw(st.binary(min_size=1, max_size=200))
    elif how == "bad_utf8":
        data = data.replace(b"fuzz", b"fu" + draw(st.sampled_from(INVALID_UTF8)), 1)
    headers: list[tuple[bytes, bytes]] = [
        (b"authorization", b"Bearer " + key.encode()),
        (b"content-type", b"application/x-protobuf"),
    ]
    if draw(st.booleans()):
        headers.append((b"content-encoding", draw(st.sampled_from([b"gzip", b"br", b"identity"]))))
    spans = span_count(body) if how == "plain" else -1
    return HttpRequest("POST", "/v1/traces", tuple(headers), data, 1, f"protobuf,{how},{spans}")


def check_traces(gateway: GatewayUnderFuzz, seen: Seen, request: HttpRequest, answers):
    gateway.check(request, answers)
    rows = seen.new()
    [answer] = answers
    where = request.describe()
    assert all(row["outcome"] != "unknown" for row in rows), f"{rows} <- {where}"
    if answer.status != 200:
        assert not rows, f"{answer.status}: {len(rows)} spans recorded <- {where}"
        return
    partial = mcp_answer(answer) or {}
    rejected = int((partial.get("partialSuccess") or {}).get("rejectedSpans", 0) or 0)
    label = request.label.split(",")
    if label[0] == "protobuf" and label[1] == "plain" and "content-encoding" not in str(request):
        assert len(rows) == int(label[2]) - rejected, f"{len(rows)} recorded <- {where}"


def test_traces_survive_hostile_bodies(gateway):
    seen = Seen(gateway, "span")
    fuzz(
        gateway,
        "/v1/traces",
        trace_requests(gateway.key),
        check=lambda request, answers: check_traces(gateway, seen, request, answers),
    )


# --- tool calls and results in /v1 bodies --------------------------------------------------


@pytest.mark.parametrize(
    ("path", "bodies"),
    [
        ("/v1/chat/completions", chat_tool_bodies()),
        ("/v1/responses", responses_tool_bodies()),
        ("/v1/messages", messages_tool_bodies()),
    ],
)
def test_tool_call_paths_survive_hostile_bodies(gateway, path, bodies):
    requests = json_requests(path, bodies, gateway.key, deep=True, hostile_bodies=True)
    fuzz(gateway, f"{path} (tools)", requests, weight=0.5)
