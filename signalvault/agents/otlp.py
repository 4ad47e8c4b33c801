"""OTLP/HTTP trace requests (protobuf or JSON) read into spans the trail can keep (SPEC §7b).

Attributes are sorted as they arrive: known metadata (GenAI semantic conventions, older names
mapped to current ones) stays readable; anything that may hold content (prompts, completions,
messages, tool arguments and results, any other string) goes to the span's content, which the
trail encrypts. Sizes and counts are bounded. Knows no HTTP; bad input raises BadRequest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from signalvault.errors import BadRequest

MAX_SPANS = 1000  # per request; the rest is refused as a partial success
MAX_ATTRIBUTES = 128  # per span (resource and events included); the rest is dropped and counted
MAX_VALUE_CHARS = 16_384  # per string value; longer ones are cut (content only, never kept clear)
MAX_EVENTS = 32  # span events kept per span
MAX_NAME = 256
MAX_CLEAR_CHARS = 256  # a metadata string longer than this is treated as content

# Older GenAI attribute names (and a few framework ones) -> the current semantic conventions.
RENAMED = {
    "gen_ai.system": "gen_ai.provider.name",
    "gen_ai.usage.prompt_tokens": "gen_ai.usage.input_tokens",
    "gen_ai.usage.completion_tokens": "gen_ai.usage.output_tokens",
    "llm.usage.prompt_tokens": "gen_ai.usage.input_tokens",
    "llm.usage.completion_tokens": "gen_ai.usage.output_tokens",
    "llm.token_count.prompt": "gen_ai.usage.input_tokens",
    "llm.token_count.completion": "gen_ai.usage.output_tokens",
    "llm.request.model": "gen_ai.request.model",
    "llm.response.model": "gen_ai.response.model",
    "llm.model_name": "gen_ai.request.model",
    "ai.model.id": "gen_ai.request.model",
    "ai.usage.promptTokens": "gen_ai.usage.input_tokens",
    "ai.usage.completionTokens": "gen_ai.usage.output_tokens",
    "gen_ai.openai.request.seed": "gen_ai.request.seed",
    "gen_ai.openai.response.service_tier": "openai.response.service_tier",
    "tool.name": "gen_ai.tool.name",
    "ai.toolCall.name": "gen_ai.tool.name",
    "ai.toolCall.id": "gen_ai.tool.call.id",
}
# Metadata kept readable when its value is a number, a boolean or a short string.
_CLEAR = re.compile(
    r"(?:gen_ai\.(?:operation\.name|provider\.name|request\.(?!.*(?:messages|prompt|input))[\w.]+"
    r"|response\.(?:id|model|finish_reasons)|usage\.[\w.]+|tool\.(?:name|call\.id|type)"
    r"|agent\.(?:name|id)|conversation\.id|output\.type|data_source\.id)"
    r"|server\.(?:address|port)|error\.type|http\.(?:request\.method|response\.status_code)"
    r"|url\.scheme|service\.(?:name|version|namespace|instance\.id)|telemetry\.sdk\.[\w.]+"
    r"|deployment\.environment(?:\.name)?|openai\.response\.service_tier|session\.id)"
)
# Named as content by the conventions (or by popular emitters): always encrypted.
_CONTENT = re.compile(
    r"(?:gen_ai\.(?:prompt|completion|input\.messages|output\.messages|system_instructions"
    r"|tool\.call\.(?:arguments|result)|tool\.definitions|content)"
    r"|llm\.(?:prompts|completions|input_messages|output_messages)|input\.value|output\.value"
    r"|traceloop\.entity\.(?:input|output)|ai\.(?:prompt|response|toolCall\.(?:args|result)))"
)
_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
_STATUS = ("unset", "ok", "error")
_HEX_ID = re.compile(r"[0-9a-f]+")


@dataclass(slots=True)
class Span:
    """One span as read: its ids, times (Unix seconds), readable metadata and its content."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start: float | None
    end: float | None
    status: str
    attributes: dict[str, Any] = field(default_factory=dict)  # readable metadata only
    content: dict[str, Any] = field(default_factory=dict)  # to be encrypted
    events: list[dict[str, Any]] = field(default_factory=list)  # names and times only
    service: str | None = None
    scope: str | None = None
    dropped: int = 0


@dataclass(slots=True)
class SpanBatch:
    spans: list[Span]
    rejected: int = 0  # beyond MAX_SPANS


def parse(body: bytes, content_type: str) -> SpanBatch:
    """Spans of an OTLP/HTTP ExportTraceServiceRequest.

    Raises:
        BadRequest: not protobuf or JSON, not a trace request, or ids that are not ids.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/x-protobuf":
        try:
            message = ExportTraceServiceRequest.FromString(body)
        except (DecodeError, ValueError):
            raise BadRequest("The body is not an OTLP protobuf trace request.") from None
        return _read(_protobuf_resource_spans(message))
    if media == "application/json":
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"The body is not valid JSON (position {exc.pos}).") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("resourceSpans", []), list):
            raise BadRequest("An OTLP trace request is an object with `resourceSpans`.")
        return _read(payload.get("resourceSpans", []))
    raise BadRequest(
        "Send spans as OTLP/HTTP: `Content-Type: application/x-protobuf` or `application/json`."
    )


def _protobuf_resource_spans(message: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    """The protobuf message in the JSON encoding's shape (ids as hex, as OTLP/JSON has them)."""
    from google.protobuf.json_format import MessageToDict

    resource_spans = []
    for rs in message.resource_spans:
        data = MessageToDict(rs)
        # MessageToDict writes bytes as base64; OTLP/JSON writes ids as hex.
        for ss_dict, ss in zip(data.get("scopeSpans", []), rs.scope_spans, strict=True):
            for span_dict, span in zip(ss_dict.get("spans", []), ss.spans, strict=True):
                span_dict["traceId"] = span.trace_id.hex()
                span_dict["spanId"] = span.span_id.hex()
                span_dict["parentSpanId"] = span.parent_span_id.hex()
        resource_spans.append(data)
    return resource_spans


def _read(resource_spans: list[Any]) -> SpanBatch:
    batch = SpanBatch([])
    for rs in resource_spans:
        if not isinstance(rs, dict):
            raise BadRequest("`resourceSpans` holds objects.")
        resource = _attributes(_object(rs.get("resource"), "resource").get("attributes"))
        service = resource.get("service.name")
        for ss in _list(rs.get("scopeSpans"), "scopeSpans"):
            if not isinstance(ss, dict):
                raise BadRequest("`scopeSpans` holds objects.")
            scope = _object(ss.get("scope"), "scope").get("name")
            for raw in _list(ss.get("spans"), "spans"):
                if len(batch.spans) >= MAX_SPANS:
                    batch.rejected += 1
                    continue
                span = _span(raw)
                span.service = str(service)[:MAX_NAME] if isinstance(service, str) else None
                span.scope = scope[:MAX_NAME] if isinstance(scope, str) else None
                _sort(span, resource, prefix="resource.")
                batch.spans.append(span)
    return batch


def _span(raw: Any) -> Span:
    if not isinstance(raw, dict):
        raise BadRequest("`spans` holds objects.")
    trace_id = _hex_id(raw.get("traceId"), 32, "traceId")
    span_id = _hex_id(raw.get("spanId"), 16, "spanId")
    parent = raw.get("parentSpanId") or None
    kind = raw.get("kind", 0)
    status_object = _object(raw.get("status"), "status")
    status = status_object.get("code", 0)
    span = Span(
        trace_id,
        span_id,
        _hex_id(parent, 16, "parentSpanId") if parent else None,
        str(raw.get("name") or "")[:MAX_NAME],
        _enum(kind, _KINDS, "SPAN_KIND_"),
        _nanos(raw.get("startTimeUnixNano")),
        _nanos(raw.get("endTimeUnixNano")),
        _enum(status, _STATUS, "STATUS_CODE_"),
    )
    _sort(span, _attributes(raw.get("attributes")))
    message = status_object.get("message")
    if isinstance(message, str) and message:
        span.content["status.message"] = message[:MAX_VALUE_CHARS]
    for event in _list(raw.get("events"), "events")[:MAX_EVENTS]:
        if isinstance(event, dict):
            name = str(event.get("name") or "")[:MAX_NAME]
            span.events.append({"name": name, "at": _nanos(event.get("timeUnixNano"))})
            for key, value in _attributes(event.get("attributes")).items():
                span.content[f"event.{name}.{key}"[:MAX_NAME]] = value
    return span


def _sort(span: Span, attributes: dict[str, Any], prefix: str = "") -> None:
    """Each attribute to the readable metadata or to the (encrypted) content, bounded."""
    for key, value in attributes.items():
        if len(span.attributes) + len(span.content) >= MAX_ATTRIBUTES:
            span.dropped += 1
            continue
        name = RENAMED.get(key, key)
        if _is_clear(name, value):
            span.attributes[prefix + name] = value
        else:
            span.content[prefix + name] = _bounded(value)


def _is_clear(name: str, value: Any) -> bool:
    if _CONTENT.match(name):
        return False
    if isinstance(value, (bool, int, float)):
        return True
    if _CLEAR.fullmatch(name) is None:
        return False
    if isinstance(value, str):
        return len(value) <= MAX_CLEAR_CHARS
    return isinstance(value, list) and all(
        isinstance(v, (str, int, float)) and len(str(v)) <= MAX_CLEAR_CHARS for v in value[:16]
    )


def _bounded(value: Any) -> Any:
    if isinstance(value, str):
        return value[:MAX_VALUE_CHARS]
    if isinstance(value, list):
        return [_bounded(v) for v in value[:MAX_ATTRIBUTES]]
    if isinstance(value, dict):
        return {str(k)[:MAX_NAME]: _bounded(v) for k, v in list(value.items())[:MAX_ATTRIBUTES]}
    return value


def _attributes(raw: Any) -> dict[str, Any]:
    """OTLP KeyValue list -> {key: plain value}."""
    found: dict[str, Any] = {}
    for item in raw if isinstance(raw, list) else ():
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            found[item["key"][:MAX_NAME]] = _value(item.get("value"))
    return found


def _value(raw: Any) -> Any:
    """An OTLP AnyValue as a plain value."""
    if not isinstance(raw, dict):
        return None
    if "stringValue" in raw:
        return str(raw["stringValue"])
    if "boolValue" in raw:
        return bool(raw["boolValue"])
    if "intValue" in raw:
        try:
            return int(raw["intValue"])  # int64 travels as a string in OTLP/JSON
        except (TypeError, ValueError, OverflowError):
            raise BadRequest("An `intValue` is not an integer.") from None
    if "doubleValue" in raw:
        value = raw["doubleValue"]
        try:  # a number, or "NaN" / "Infinity" as OTLP/JSON writes those
            return float(value) if isinstance(value, (int, float, str)) else None
        except ValueError:
            raise BadRequest("A `doubleValue` is not a number.") from None
    if "arrayValue" in raw:
        values = _list(_object(raw["arrayValue"], "arrayValue").get("values"), "values")
        return [_value(v) for v in values[:MAX_ATTRIBUTES]]
    if "kvlistValue" in raw:
        return _attributes(_object(raw["kvlistValue"], "kvlistValue").get("values"))
    if "bytesValue" in raw:
        return str(raw["bytesValue"])[:MAX_VALUE_CHARS]
    return None


def _object(value: Any, name: str) -> dict[str, Any]:
    """A field that OTLP/JSON defines as an object: absent or null is empty, anything else is
    a bad request (never an attribute error half-way through a batch)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"`{name}` must be an object.")
    return value


def _list(value: Any, name: str) -> list[Any]:
    """A field that OTLP/JSON defines as an array: absent or null is empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"`{name}` must be an array.")
    return value


def _hex_id(value: Any, size: int, name: str) -> str:
    text = value.lower() if isinstance(value, str) else ""
    if len(text) != size or not _HEX_ID.fullmatch(text) or not text.strip("0"):
        raise BadRequest(f"`{name}` must be {size} hex digits, not all zero.")
    return text


def _nanos(value: Any) -> float | None:
    try:
        nanos = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return nanos / 1e9 if nanos > 0 else None


def _enum(value: Any, names: tuple[str, ...], prefix: str) -> str:
    if isinstance(value, int) and 0 <= value < len(names):
        return names[value]
    if isinstance(value, str) and value.startswith(prefix):
        return value[len(prefix) :].lower()
    return names[0]
