"""Request bodies of the agent entry points, well-formed before `mutations.py` breaks them:
MCP JSON-RPC requests (params from the `mcp` SDK's own types), OTLP trace requests (JSON and
protobuf, with GenAI attributes the ingest sorts), and /v1 bodies carrying tool calls and tool
results in each API's shape (ids reused, arguments that are not JSON or are huge)."""

from __future__ import annotations

from typing import Any

import mcp.types
import orjson
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.hostile.shapes import PII, SECRET, json_values, shape_of, texts

# --- MCP -----------------------------------------------------------------------------------

MCP_PARAMS: dict[str, Any] = {
    "initialize": mcp.types.InitializeRequestParams,
    "tools/list": mcp.types.PaginatedRequestParams,
    "tools/call": mcp.types.CallToolRequestParams,
    "resources/list": mcp.types.PaginatedRequestParams,
    "resources/read": mcp.types.ReadResourceRequestParams,
    "prompts/list": mcp.types.PaginatedRequestParams,
    "prompts/get": mcp.types.GetPromptRequestParams,
}
# Methods whose answer is one `mcp_call` record (the others only list or negotiate).
RECORDED_METHODS = frozenset({"tools/call", "resources/read", "prompts/get"})
TOOL_NAMES = st.sampled_from(["echo"] * 4 + ["fetch_document", "fail", "nope", ""])
MCP_ARGUMENTS = st.one_of(
    st.fixed_dictionaries({"text": texts}),
    st.fixed_dictionaries({"url": st.sampled_from(["https://example.com/doc", "x"])}),
    st.dictionaries(st.text(max_size=10), json_values, max_size=3),
)
_FIXED: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "tools/call": {"name": TOOL_NAMES, "arguments": MCP_ARGUMENTS},
    "resources/read": {"uri": st.sampled_from(["mock://readme", "mock://nope", "file:///etc"])},
    "prompts/get": {"name": st.sampled_from(["greeting", "nope"])},
    "initialize": {
        "protocolVersion": st.sampled_from(["2025-06-18", "2025-03-26", "1999-01-01"]),
        "capabilities": st.just({}),
        "clientInfo": st.just({"name": "fuzz", "version": "1"}),
    },
}
REQUEST_IDS = st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=20), st.none())


@st.composite
def mcp_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """One JSON-RPC request as the SDK's client sends it, params drawn from the SDK's types."""
    method = draw(st.sampled_from([*MCP_PARAMS, "tools/call", "tools/call", "nope/nope"]))
    params = draw(shape_of(MCP_PARAMS.get(method, dict[str, Any])))
    params = dict(params) if isinstance(params, dict) else {}
    params.update({key: draw(value) for key, value in _FIXED.get(method, {}).items()})
    return {"jsonrpc": "2.0", "id": draw(REQUEST_IDS), "method": method, "params": params}


# --- OTLP ----------------------------------------------------------------------------------

HEX = "0123456789abcdef"
ATTRIBUTE_KEYS = st.sampled_from(
    [
        "gen_ai.operation.name",
        "gen_ai.request.model",
        "gen_ai.system",
        "gen_ai.usage.input_tokens",
        "gen_ai.tool.name",
        "gen_ai.tool.call.id",
        "gen_ai.tool.call.arguments",
        "gen_ai.prompt",
        "gen_ai.completion",
        "service.name",
        "llm.token_count.prompt",
        "x.custom",
    ]
)


def _hex(size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=HEX, min_size=size, max_size=size).filter(lambda s: s.strip("0"))


any_values = st.recursive(
    st.one_of(
        st.builds(lambda v: {"stringValue": v}, texts),
        st.builds(lambda v: {"intValue": str(v)}, st.integers(-(2**63), 2**63 - 1)),
        st.builds(lambda v: {"boolValue": v}, st.booleans()),
        st.builds(lambda v: {"doubleValue": v}, st.floats(allow_nan=False, allow_infinity=False)),
    ),
    lambda inner: st.one_of(
        st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(inner, max_size=3)),
        st.builds(
            lambda kvs: {"kvlistValue": {"values": kvs}},
            st.lists(st.fixed_dictionaries({"key": ATTRIBUTE_KEYS, "value": inner}), max_size=3),
        ),
    ),
    max_leaves=6,
)
attributes = st.lists(
    st.fixed_dictionaries({"key": ATTRIBUTE_KEYS, "value": any_values}), max_size=6
)
spans = st.fixed_dictionaries(
    {
        "traceId": _hex(32),
        "spanId": _hex(16),
        "name": st.sampled_from(["chat gpt-4o-mini", "execute_tool echo", "agent run", ""]),
        "startTimeUnixNano": st.integers(0, 2**63 - 1).map(str),
        "endTimeUnixNano": st.integers(0, 2**63 - 1).map(str),
        "attributes": attributes,
    },
    optional={
        "parentSpanId": _hex(16),
        "kind": st.integers(0, 5),
        "status": st.fixed_dictionaries({"code": st.integers(0, 2)}, optional={"message": texts}),
        "events": st.lists(
            st.fixed_dictionaries(
                {"name": st.text(max_size=10), "attributes": attributes},
                optional={"timeUnixNano": st.integers(0, 2**63 - 1).map(str)},
            ),
            max_size=2,
        ),
    },
)
trace_bodies = st.fixed_dictionaries(
    {
        "resourceSpans": st.lists(
            st.fixed_dictionaries(
                {
                    "resource": st.fixed_dictionaries({"attributes": attributes}),
                    "scopeSpans": st.lists(
                        st.fixed_dictionaries(
                            {
                                "scope": st.just({"name": "fuzz"}),
                                "spans": st.lists(spans, max_size=3),
                            }
                        ),
                        min_size=1,
                        max_size=2,
                    ),
                }
            ),
            min_size=1,
            max_size=2,
        )
    }
)


def span_count(body: dict[str, Any]) -> int:
    return sum(len(ss["spans"]) for rs in body["resourceSpans"] for ss in rs["scopeSpans"])


def as_protobuf(body: dict[str, Any]) -> bytes:
    """The OTLP/JSON `body` as the protobuf an exporter sends (ids as bytes, not hex)."""
    from google.protobuf.json_format import ParseDict

    converted = orjson.loads(orjson.dumps(body))
    for rs in converted["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in span:  # OTLP/JSON has hex; the protobuf JSON mapping base64
                        span[name] = _base64(bytes.fromhex(span[name]))
    return ParseDict(converted, ExportTraceServiceRequest()).SerializeToString()


def _base64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode()


# --- tool calls in /v1 bodies ----------------------------------------------------------------

CALL_IDS = st.sampled_from(["call_1", "call_1", "toolu_01", "", "x" * 5000, "call\x00id", "💥"])
ARGUMENTS = st.one_of(
    st.builds(
        lambda d: orjson.dumps(d).decode(), st.dictionaries(st.text(max_size=8), json_values)
    ),
    st.sampled_from(["{", "not json", "", "null", "[1,2]", '{"a":"\\ud800"}', '{"a":1}{"b":2}']),
    st.sampled_from((*PII, SECRET)).map(lambda s: orjson.dumps({"text": s}).decode()),
    st.integers(10_000, 300_000).map(lambda n: orjson.dumps({"blob": "y" * n}).decode()),
    json_values,  # not a string at all
)
TOOL_NAME = st.sampled_from(["get_weather", "echo", "", "a" * 300, "name with spaces"])
_OPENAI_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
_ANTHROPIC_TOOL = {"name": "get_weather", "input_schema": {"type": "object"}}
ASK_FOR_CALL = st.sampled_from(["", " [[mock:tool=get_weather]]", ' [[mock:tool=echo {"x": 1}]]'])


@st.composite
def chat_tool_bodies(draw: st.DrawFn) -> dict[str, Any]:
    calls = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "id": CALL_IDS,
                    "type": st.just("function"),
                    "function": st.fixed_dictionaries({"name": TOOL_NAME, "arguments": ARGUMENTS}),
                }
            ),
            min_size=1,
            max_size=3,
        )
    )
    results = [
        {"role": "tool", "tool_call_id": draw(st.sampled_from([c["id"], "other"])), "content": r}
        for c in calls
        for r in [draw(texts | st.sampled_from(PII))]
    ]
    return {
        "model": "gpt-4o-mini",
        "stream": draw(st.booleans()),
        "tools": [_OPENAI_TOOL],
        "messages": [
            {"role": "user", "content": "weather?" + draw(ASK_FOR_CALL)},
            {"role": "assistant", "content": None, "tool_calls": calls},
            *draw(st.permutations(results)),
        ],
    }


@st.composite
def responses_tool_bodies(draw: st.DrawFn) -> dict[str, Any]:
    items: list[Any] = [{"role": "user", "content": "weather?" + draw(ASK_FOR_CALL)}]
    for _ in range(draw(st.integers(1, 3))):
        call_id = draw(CALL_IDS)
        items.append(
            {
                "type": "function_call",
                "call_id": call_id,
                "name": draw(TOOL_NAME),
                "arguments": draw(ARGUMENTS),
            }
        )
        output = draw(texts | st.sampled_from(PII) | json_values)
        items.append({"type": "function_call_output", "call_id": call_id, "output": output})
    return {
        "model": "gpt-4o-mini",
        "stream": draw(st.booleans()),
        "tools": [{"type": "function", "name": "get_weather", "parameters": {}}],
        "input": items,
    }


@st.composite
def messages_tool_bodies(draw: st.DrawFn) -> dict[str, Any]:
    uses = [
        {
            "type": "tool_use",
            "id": draw(CALL_IDS),
            "name": draw(TOOL_NAME),
            "input": draw(json_values),
        }
        for _ in range(draw(st.integers(1, 3)))
    ]
    results = [
        {
            "type": "tool_result",
            "tool_use_id": draw(st.sampled_from([u["id"], "toolu_other"])),
            "content": draw(
                texts | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": texts}))
            ),
            **({"is_error": True} if draw(st.booleans()) else {}),
        }
        for u in uses
    ]
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "stream": draw(st.booleans()),
        "tools": [_ANTHROPIC_TOOL],
        "messages": [
            {"role": "user", "content": "weather?" + draw(ASK_FOR_CALL)},
            {"role": "assistant", "content": uses},
            {"role": "user", "content": results},
        ],
    }
