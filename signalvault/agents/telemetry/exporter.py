"""OpenTelemetry out: one span per finished record (model call, MCP call, tool call or result),
with the GenAI semantic conventions, queued for the SDK's BatchSpanProcessor, whose thread sends
batches over OTLP/HTTP. The request path only builds a span and appends it to a bounded queue:
a slow or dead collector delays that thread, never a request; a full queue drops the oldest span
(counted). No content leaves unless `capture_content` is on (MCP arguments and results only).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from signalvault import __version__
from signalvault.agents.telemetry.ids import span_id_of, trace_id_of
from signalvault.config import Settings, TelemetrySettings
from signalvault.trail.audit import MCP_CALL, OK, UNKNOWN, Interaction
from signalvault.trail.linked import Source, ToolEvent

log = logging.getLogger("signalvault.telemetry")
EXPORTED, FAILED, DROPPED = "exported", "failed", "dropped"
_OPERATIONS = {"chat": "chat", "messages": "chat", "responses": "chat", "embeddings": "embeddings"}
_CONTENT_KEPT = 256  # MCP calls whose content waits for their span (capture_content only)
_SCOPE = InstrumentationScope("signalvault", __version__)

Counter = Callable[[str, int], None]  # (outcome, spans): /metrics


def open_span_export(settings: Settings, count: Counter) -> SpanExport:
    """The exporter `[telemetry]` asks for (starts the processor's thread)."""
    providers = {p.name: ProviderInfo(p.kind, p.base_url) for p in settings.providers}
    return SpanExport(settings.telemetry, providers, count)


class ProviderInfo:
    """What a span says about a provider: its GenAI name and its address."""

    def __init__(self, kind: str, base_url: str) -> None:
        self.system = kind if kind in ("openai", "anthropic") else "openai"
        parts = urlsplit(base_url)
        self.address = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)


class SpanExport:
    def __init__(
        self,
        settings: TelemetrySettings,
        providers: Mapping[str, ProviderInfo],
        count: Counter,
        exporter: SpanExporter | None = None,
    ) -> None:
        self._settings = settings
        self._providers = providers
        self._resource = Resource.create(
            {"service.name": settings.service_name, "service.version": __version__}
        )
        self._counting = _CountingExporter(
            exporter
            or OTLPSpanExporter(
                endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/traces",
                headers={name: value.reveal() for name, value in settings.headers.items()},
                timeout=settings.timeout_seconds,
            ),
            count,
        )
        self._processor = BatchSpanProcessor(
            self._counting,
            max_queue_size=settings.queue_size,
            schedule_delay_millis=settings.export_interval_seconds * 1000.0,
            max_export_batch_size=settings.batch_size,
            export_timeout_millis=settings.timeout_seconds * 1000.0,
        )
        self._count = count
        self._content: OrderedDict[str, tuple[bytes, bytes | None]] = OrderedDict()

    @property
    def captures_content(self) -> bool:
        return self._settings.capture_content

    def keep_content(self, record_id: str, arguments: bytes, result: bytes | None) -> None:
        """An MCP call's content for its span (only called with `capture_content` on)."""
        self._content[record_id] = (arguments, result)
        while len(self._content) > _CONTENT_KEPT:
            self._content.popitem(last=False)

    def observe(self, interaction: Interaction) -> None:
        """Queue the span of a finished record (the audit trail's observer calls this)."""
        if interaction.outcome == UNKNOWN:
            return
        if interaction.kind == MCP_CALL:  # (tool calls and results: `observe_event`)
            name, attributes = self._mcp(interaction)
        else:
            name, attributes = self._model(interaction)
        attributes.update(_common(interaction, interaction.id, interaction.outcome))
        _put(attributes, "http.response.status_code", interaction.status_code)
        parent = interaction.parent_span or (
            span_id_of(interaction.parent_id) if interaction.parent_id else None
        )
        self._submit(
            name,
            attributes,
            interaction,
            interaction.id,
            parent,
            interaction.created_at,
            interaction.elapsed_ms(),
            interaction.error_code,
        )

    def observe_event(self, event: ToolEvent) -> None:
        """Queue the span of a tool call or result (the audit trail's event observer), in the
        trace of the record holding it, under the record it follows from."""
        attributes: dict[str, Any] = {"gen_ai.operation.name": "execute_tool"}
        _put(attributes, "gen_ai.tool.name", event.tool_name)
        _put(attributes, "gen_ai.tool.call.id", event.call_id)
        attributes["signalvault.event"] = event.kind
        attributes.update(_common(event.holder, event.id, event.outcome))
        name = f"execute_tool {event.tool_name or event.kind}"
        parent = span_id_of(event.parent_id) if event.parent_id else None
        self._submit(name, attributes, event.holder, event.id, parent, event.created_at)

    def _submit(
        self,
        name: str,
        attributes: dict[str, Any],
        traced: Source,
        record_id: str,
        parent: str | None,
        created_at: float,
        elapsed_ms: float = 0.0,
        error_code: str | None = None,
    ) -> None:
        """Queue one span of the record `record_id` in `traced`'s trace, under span `parent`."""
        outcome = attributes["signalvault.outcome"]
        failed = outcome != OK
        if failed:
            attributes["error.type"] = error_code or outcome
        start = int(created_at * 1e9)
        trace = int(trace_id_of(traced), 16)
        span = ReadableSpan(
            name=name,
            context=_context(trace, int(span_id_of(record_id), 16)),
            parent=_context(trace, int(parent, 16), remote=True) if parent else None,
            resource=self._resource,
            attributes=attributes,
            kind=SpanKind.CLIENT,
            status=Status(StatusCode.ERROR) if failed else Status(StatusCode.UNSET),
            start_time=start,
            end_time=start + int(elapsed_ms * 1e6),
            instrumentation_scope=_SCOPE,
        )
        self._counting.submit(self._settings.queue_size)
        self._processor.on_end(span)

    def _model(self, interaction: Interaction) -> tuple[str, dict[str, Any]]:
        operation = _OPERATIONS.get(interaction.api, interaction.api)
        attributes: dict[str, Any] = {"gen_ai.operation.name": operation}
        provider = self._providers.get(interaction.provider or "")
        if provider is not None:
            attributes["gen_ai.provider.name"] = provider.system
            attributes["gen_ai.system"] = provider.system  # the older name many backends read
            if provider.address:
                attributes["server.address"] = provider.address
                attributes["server.port"] = provider.port
        _put(attributes, "gen_ai.request.model", interaction.model_requested)
        _put(attributes, "gen_ai.response.model", interaction.model_used)
        _put(attributes, "gen_ai.usage.input_tokens", interaction.prompt_tokens)
        _put(attributes, "gen_ai.usage.output_tokens", interaction.completion_tokens)
        return f"{operation} {interaction.model_requested or ''}".strip(), attributes

    def _mcp(self, interaction: Interaction) -> tuple[str, dict[str, Any]]:
        details = interaction.details or {}
        method = details.get("method")
        is_tool = method == "tools/call"
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool" if is_tool else str(method or "mcp")
        }
        _put(attributes, "gen_ai.tool.name", interaction.tool_name)
        _put(attributes, "gen_ai.tool.call.id", interaction.call_id)
        _put(attributes, "signalvault.event", interaction.kind)
        _put(attributes, "mcp.method.name", method)
        _put(attributes, "signalvault.mcp.server", interaction.provider)
        content = self._content.pop(interaction.id, None)
        if content is not None and self._settings.capture_content:
            attributes["gen_ai.tool.call.arguments"] = content[0].decode("utf-8", "replace")
            if content[1] is not None:
                attributes["gen_ai.tool.call.result"] = content[1].decode("utf-8", "replace")
        if is_tool:
            name = f"execute_tool {interaction.tool_name or interaction.kind}"
        else:  # resources/read, prompts/get, or a request refused before its method was read
            name = " ".join(str(part) for part in (method or "mcp", interaction.provider) if part)
        return name, attributes

    def shutdown(self) -> None:
        """Send what is queued, waiting at most `shutdown_timeout_seconds`: the processor's own
        bound (30 s) is not configurable, so it runs in a daemon thread a dead collector cannot
        keep alive past the process."""
        stopping = threading.Thread(
            target=self._processor.shutdown, name="signalvault-span-shutdown", daemon=True
        )
        stopping.start()
        stopping.join(self._settings.shutdown_timeout_seconds)
        if stopping.is_alive():
            log.warning("spans still queued at shutdown were not sent (collector too slow)")


class _CountingExporter(SpanExporter):
    """Counts spans exported, failed and dropped. The processor drops the oldest span when a
    span arrives at a full queue; spans queued are those submitted and not yet handed over."""

    def __init__(self, exporter: SpanExporter, count: Counter) -> None:
        self._exporter = exporter
        self._count = count
        self._lock = threading.Lock()
        self._queued = 0
        self._is_failing = False  # logged when exports start failing and when they recover

    def submit(self, capacity: int) -> None:
        with self._lock:
            if self._queued >= capacity:
                self._count(DROPPED, 1)
            else:
                self._queued += 1

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            self._queued = max(0, self._queued - len(spans))
        started = time.perf_counter()
        try:
            result = self._exporter.export(spans)
        except Exception as exc:  # the exporter's own bug: counted, logged by type only
            log.error("span export failed", extra={"error": type(exc).__name__})
            result = SpanExportResult.FAILURE
        is_ok = result is SpanExportResult.SUCCESS
        self._count(EXPORTED if is_ok else FAILED, len(spans))
        if is_ok == self._is_failing:  # once per change, not once per batch of a dead collector
            self._is_failing = not is_ok
            ms = round((time.perf_counter() - started) * 1e3)
            if is_ok:
                log.info("span export works again")
            else:
                log.warning("span export failed; spans are counted as failed", extra={"ms": ms})
        return result

    def shutdown(self, timeout_millis: float = 30_000, **_: Any) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter.force_flush(timeout_millis)


def _common(record: Source, record_id: str, outcome: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "signalvault.record_id": record_id,
        "signalvault.outcome": outcome,
    }
    key = record.key
    if key is not None:
        attributes["signalvault.project"] = key.project
        attributes["signalvault.key_id"] = key.id
    _put(attributes, "signalvault.run_id", record.run_id)
    _put(attributes, "gen_ai.conversation.id", record.session_id)
    return attributes


def _put(attributes: dict[str, Any], name: str, value: Any) -> None:
    if value is not None:
        attributes[name] = value


def _context(trace: int, span: int, *, remote: bool = False) -> SpanContext:
    return SpanContext(trace, span, is_remote=remote, trace_flags=TraceFlags(TraceFlags.SAMPLED))
