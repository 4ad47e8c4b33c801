"""Prometheus metrics of one gateway: requests, latency, tokens, guardrail outcomes, provider
errors, the audit writer and alert delivery, in a registry of its own (never the global one, so
several apps in one process, tests included, do not collide).

Request metrics are fed from one place, the audit trail's observer (`observe`), once per finished
interaction, on the event loop. They are plain dicts keyed by label tuple, turned into Prometheus
families only when scraped: prometheus-client's own counters take a lock on every update, which
made a request's metrics cost several times more (bench/metrics_cost.py). Label sets an
operator does not control (model names) are capped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from signalvault.errors import GuardrailUnavailable
from signalvault.guardrails.scan_cache import ScanCache
from signalvault.trail.audit import PROVIDER_ERROR, STREAM_CUT, Interaction

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format `generate_latest` writes
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
MAX_SERIES = 1000  # distinct label sets per metric before new ones are folded into "other"
BREAKER_STATES = ("closed", "open", "half_open")
GUARDRAIL_UNAVAILABLE = GuardrailUnavailable.code

# Breaker state per provider name ("closed", "open", "half_open"), read at each scrape.
BreakerSource = Callable[[], Mapping[str, str]]
Labels = tuple[str, ...]


class _Counts:
    """A labelled counter updated from the event loop only (so without a lock)."""

    def __init__(self, name: str, documentation: str, labels: Labels) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        try:
            self.values[labels] += amount
        except KeyError:
            if len(self.values) >= MAX_SERIES:
                labels = ("other",) * len(labels)
            self.values[labels] = self.values.get(labels, 0.0) + amount

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, value in list(self.values.items()):
            family.add_metric(list(labels), value)
        return family


class _Distribution:
    """A labelled histogram updated from the event loop only: per label set, a count per bucket
    (the last is +Inf) and the sum at the end."""

    def __init__(
        self, name: str, documentation: str, labels: Labels, buckets: tuple[float, ...]
    ) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self.buckets = buckets
        self.values: dict[Labels, list[float]] = {}

    def observe(self, labels: Labels, value: float) -> None:
        counts = self.values.get(labels)
        if counts is None:
            if len(self.values) >= MAX_SERIES:
                labels = ("other",) * len(labels)
            counts = self.values.setdefault(labels, [0.0] * (len(self.buckets) + 2))
        counts[bisect_left(self.buckets, value)] += 1  # bucket bounds are inclusive (le)
        counts[-1] += value

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        bounds = [*(str(float(b)) for b in self.buckets), "+Inf"]
        for labels, counts in list(self.values.items()):
            cumulative, total = [], 0.0
            for bound, count in zip(bounds, counts[:-1], strict=True):
                total += count
                cumulative.append((bound, total))
            family.add_metric(list(labels), cumulative, counts[-1])
        return family


class _RequestCollector(Collector):
    def __init__(self, families: list[_Counts | _Distribution]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        for family in self._families:
            yield family.family()


class _BreakerCollector(Collector):
    """`signalvault_provider_breaker_state`: 1 for each provider's current state, else 0."""

    def __init__(self) -> None:
        self.source: BreakerSource | None = None

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "signalvault_provider_breaker_state",
            "Circuit breaker state per provider (1 = the provider is in this state).",
            labels=["provider", "state"],
        )
        if self.source is not None:
            for provider, current in sorted(self.source().items()):
                for state in BREAKER_STATES:
                    family.add_metric([provider, state], 1.0 if state == current else 0.0)
        yield family


class _ScanCacheCollector(Collector):
    """The guardrail scan cache of the policy in force (counts start over when it changes)."""

    def __init__(self) -> None:
        self.source: Callable[[], ScanCache] | None = None

    def collect(self) -> Iterable[Metric]:
        if self.source is None:
            return
        cache = self.source()
        yield CounterMetricFamily(
            "signalvault_guardrail_scan_cache_hits",
            "Input texts whose findings came from the scan cache, per detector.",
            value=cache.hits,
        )
        yield CounterMetricFamily(
            "signalvault_guardrail_scan_cache_misses",
            "Input texts scanned because the scan cache did not hold them, per detector.",
            value=cache.misses,
        )
        yield GaugeMetricFamily(
            "signalvault_guardrail_scan_cache_entries",
            "Findings held in the scan cache (at most [guardrails] scan_cache_entries).",
            value=len(cache),
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._requests = _Counts(
            "signalvault_requests",
            "Finished /v1 requests by API, outcome and status class.",
            ("api", "outcome", "status_class"),
        )
        self._latency = _Distribution(
            "signalvault_request_duration_seconds",
            "Time from request to recorded outcome (streams: to their end).",
            ("api",),
            LATENCY_BUCKETS,
        )
        self._ttfb = _Distribution(
            "signalvault_request_ttfb_seconds",
            "Time from request to the provider's response headers.",
            ("api",),
            LATENCY_BUCKETS,
        )
        self._tokens = _Counts(
            "signalvault_tokens",
            "Tokens of forwarded requests by model and kind (prompt, completion).",
            ("model", "kind"),
        )
        self._guardrails = _Counts(
            "signalvault_guardrail_evaluations",
            "Guardrail rule evaluations by rule, action, direction and outcome.",
            ("rule", "action", "direction", "outcome"),
        )
        self._findings = _Counts(
            "signalvault_guardrail_findings",
            "Guardrail findings by rule and finding type (never values).",
            ("rule", "type"),
        )
        self._engine_failures = _Counts(
            "signalvault_guardrail_engine_failures",
            "Guardrail engine failures by the failure mode applied: closed (refused) or open "
            "(passed, bypass recorded).",
            ("mode",),
        )
        self._provider_errors = _Counts(
            "signalvault_provider_errors",
            "Forwarded requests that failed at the provider, by provider and error code.",
            ("provider", "code"),
        )
        r.register(
            _RequestCollector(
                [
                    self._requests,
                    self._latency,
                    self._ttfb,
                    self._tokens,
                    self._guardrails,
                    self._findings,
                    self._engine_failures,
                    self._provider_errors,
                ]
            )
        )
        # Updated from the commit and alert threads, once per batch or alert: the library's
        # locked metrics are right here.
        self._audit_commit = Histogram(
            "signalvault_audit_commit_seconds",
            "Duration of one audit store transaction (group commit).",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self._audit_batch = Histogram(
            "signalvault_audit_batch_ops",
            "Audit write operations committed together in one transaction.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self._audit_failures = Counter(
            "signalvault_audit_write_failures",
            "Audit store transactions that failed (their writes were refused or lost).",
            registry=r,
        )
        self._audit_pending = Gauge(
            "signalvault_audit_pending_ops",
            "Audit write operations queued and not yet committed.",
            registry=r,
        )
        self._spool_bytes = Gauge(
            "signalvault_audit_spool_bytes",
            "Bytes of audit writes in the on-disk spool, waiting for the store.",
            registry=r,
        )
        self._alerts_sent = Counter(
            "signalvault_alerts_sent", "Alerts delivered to the webhook.", ["kind"], registry=r
        )
        self._alerts_dropped = Counter(
            "signalvault_alerts_dropped",
            "Alerts not delivered, by reason (queue_full, failed, shutdown).",
            ["reason"],
            registry=r,
        )
        self._spans = Counter(
            "signalvault_telemetry_spans",
            "OpenTelemetry spans by outcome: exported, failed (the collector refused or did not "
            "answer) or dropped (the export queue was full).",
            ["outcome"],
            registry=r,
        )
        self._breakers = _BreakerCollector()
        r.register(self._breakers)
        self._scan_cache = _ScanCacheCollector()
        r.register(self._scan_cache)

    def set_breaker_source(self, source: BreakerSource | None) -> None:
        """Hook for the providers' circuit breakers: `source()` maps provider name to state."""
        self._breakers.source = source

    def set_scan_cache_source(self, source: Callable[[], ScanCache]) -> None:
        """Hook for the guardrail scan cache of whichever policy is in force."""
        self._scan_cache.source = source

    def set_pending_source(self, source: Callable[[], float]) -> None:
        self._audit_pending.set_function(source)

    def set_spool_source(self, source: Callable[[], float]) -> None:
        self._spool_bytes.set_function(source)

    def count_alert(self, kind: str) -> None:
        self._alerts_sent.labels(kind).inc()

    def count_dropped_alert(self, reason: str) -> None:
        self._alerts_dropped.labels(reason).inc()

    def count_spans(self, outcome: str, spans: int) -> None:
        """The span exporter's counter (called from its thread and the event loop)."""
        self._spans.labels(outcome).inc(spans)

    def observe(self, interaction: Interaction) -> None:
        """Count one finished interaction (the audit trail's observer calls this)."""
        api = (interaction.api,)
        status = interaction.status_code
        status_class = f"{status // 100}xx" if status else "none"
        self._requests.inc((interaction.api, interaction.outcome, status_class))
        self._latency.observe(api, interaction.elapsed_ms() / 1000.0)
        if interaction.ttfb_ms is not None:
            self._ttfb.observe(api, interaction.ttfb_ms / 1000.0)
        model = interaction.model_used
        if model is not None:
            if interaction.prompt_tokens:
                self._tokens.inc((model, "prompt"), interaction.prompt_tokens)
            if interaction.completion_tokens:
                self._tokens.inc((model, "completion"), interaction.completion_tokens)
        if interaction.outcome in (PROVIDER_ERROR, STREAM_CUT):
            code = interaction.error_code or "unknown"
            if code != GUARDRAIL_UNAVAILABLE:  # the guardrail engine failed, not the provider
                self._provider_errors.inc((interaction.provider or "none", code))
        if interaction.error_code == GUARDRAIL_UNAVAILABLE:
            self._engine_failures.inc(("closed",))
        guardrails = self._guardrails.inc
        for evaluation in interaction.evaluations:
            rule = evaluation["rule"]
            outcome = evaluation["outcome"]
            guardrails((rule, evaluation["action"], evaluation["direction"], outcome))
            if outcome != "pass":
                if outcome == "bypassed":
                    self._engine_failures.inc(("open",))
                for kind, count in evaluation["kinds"].items():
                    self._findings.inc((rule, kind), count)

    def observe_batch(self, ops: int, seconds: float, is_committed: bool) -> None:
        """The audit writer's `on_batch` hook."""
        if is_committed:
            self._audit_commit.observe(seconds)
            self._audit_batch.observe(ops)
        else:
            self._audit_failures.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
