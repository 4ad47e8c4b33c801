"""Spans from agent frameworks into the trail (`POST /v1/traces`, SPEC §7b): each span becomes
a `span` record in the run of its trace (or of the session the sender names), under the gateway's
tool call when it carries that call's id, its content encrypted under the end user's data key.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from signalvault.agents.call_index import CallIndex
from signalvault.agents.run_ids import run_id_of
from signalvault.crypto.gateway_keys import GatewayKey
from signalvault.store import Store
from signalvault.store.run_queries import run_of_trace
from signalvault.trail.audit import OK, SPAN, AuditTrail, Interaction

if TYPE_CHECKING:  # the parser (protobuf and the OTLP classes) loads with the first spans
    from signalvault.agents.otlp import Span, SpanBatch

# A span's own start time is kept as the record's time when it is plausible; a sender's clock
# must not date records where retention or listings would misplace them.
PAST_SECONDS = 86_400.0
FUTURE_SECONDS = 300.0
ERROR = "error"


class SpanIngest:
    def __init__(self, trail: AuditTrail, store: Store, calls: CallIndex) -> None:
        self._trail = trail
        self._store = store
        self._calls = calls

    async def record(
        self,
        batch: SpanBatch,
        key: GatewayKey,
        session: str | None,
        end_user: str | None,
    ) -> int:
        """Record every span of `batch` (committed before returning); how many were recorded.

        Raises:
            StoreError: nothing could be committed (the sender should retry).
        """
        project = key.project
        runs: dict[str, str | None] = {}
        by_span: dict[tuple[str, str], str] = {}
        events: list[tuple[Interaction, bytes | None, float | None]] = []
        call_ids = [s.attributes.get("gen_ai.tool.call.id") for s in batch.spans]
        known = self._calls.find(project, [c for c in call_ids if isinstance(c, str)])
        now = time.time()
        for span in batch.spans:
            if span.trace_id not in runs:
                runs[span.trace_id] = (
                    run_id_of(project, session, None)
                    if session
                    else run_of_trace(self._store.engine, project, span.trace_id)
                ) or run_id_of(project, None, span.trace_id)
            run_id = runs[span.trace_id] or span.trace_id
            event = _event(span, key, session, end_user, run_id, now)
            by_span[(span.trace_id, span.span_id)] = event.id
            call = known.get(str(event.call_id)) if event.call_id else None
            if call is not None and call.record_id is not None:
                event.parent_id = call.record_id  # the tool's execution, under the model's call
            content = orjson.dumps(span.content) if span.content else None
            events.append((event, content, _duration(span)))
        for (event, _, _), span in zip(events, batch.spans, strict=True):
            if event.parent_id is None and span.parent_span_id:
                event.parent_id = by_span.get((span.trace_id, span.parent_span_id))
        await self._trail.record_batch(events)
        return len(events)


def _event(
    span: Span,
    key: GatewayKey,
    session: str | None,
    end_user: str | None,
    run_id: str,
    now: float,
) -> Interaction:
    attributes = span.attributes
    user = end_user or _text(
        attributes.pop("enduser.id", None) or span.content.pop("enduser.id", None)
    )
    started = (
        span.start if span.start and now - PAST_SECONDS < span.start < now + FUTURE_SECONDS else now
    )
    event = Interaction(
        api="otlp",
        kind=SPAN,
        created_at=started,
        key=key,
        end_user=user,
        session_id=session or _text(attributes.get("session.id")),
        trace_id=span.trace_id,
        run_id=run_id,
        call_id=_text(attributes.get("gen_ai.tool.call.id"), 128),
        tool_name=_text(attributes.get("gen_ai.tool.name")),
        provider=_text(attributes.get("gen_ai.provider.name"), 128),
        model_requested=_text(attributes.get("gen_ai.request.model")),
        model_used=_text(attributes.get("gen_ai.response.model")),
        prompt_tokens=_int(attributes.get("gen_ai.usage.input_tokens")),
        completion_tokens=_int(attributes.get("gen_ai.usage.output_tokens")),
        outcome=ERROR if span.status == "error" else OK,
    )
    event.details = {
        "name": span.name,
        "operation": _text(attributes.get("gen_ai.operation.name")),
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "span_kind": span.kind,
        "status": span.status,
        "service": span.service,
        "scope": span.scope,
        "started_at": span.start,
        "ended_at": span.end,
        "duration_ms": _duration(span),
        "attributes": attributes,
        "content_attributes": sorted(span.content),
        "events": span.events,
        "dropped_attributes": span.dropped,
    }
    return event


def _text(value: Any, size: int = 256) -> str | None:
    return value[:size] if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _duration(span: Span) -> float | None:
    if span.start is None or span.end is None or span.end < span.start:
        return None
    return round((span.end - span.start) * 1000, 3)


def spans_response(is_json: bool, rejected: int) -> bytes:
    """An ExportTraceServiceResponse: empty, or a partial success naming the refused spans."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTracePartialSuccess,
        ExportTraceServiceResponse,
    )

    message = "" if not rejected else "more spans than one request may carry; resend the rest"
    if is_json:
        partial: dict[str, Any] = {}
        if rejected:
            partial = {"rejectedSpans": str(rejected), "errorMessage": message}
        return orjson.dumps({"partialSuccess": partial})
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
        )
    serialized: bytes = response.SerializeToString()
    return serialized


__all__: Sequence[str] = ("SpanIngest", "spans_response")
