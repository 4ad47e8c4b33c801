"""Prometheus metrics of one gateway: requests, latency, tokens, guardrail outcomes, provider
errors, the audit writer and alert delivery, in a registry of its own (never the global one, so
several apps in one process, tests included, do not collide).

Request metrics are fed from one place, the audit trail's observer (`observe`), once per finished
interaction. Label children are cached by their label tuple, so a request costs a few dict
lookups and increments; label sets an operator does not control (model names) are capped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from signalvault.audit import PROVIDER_ERROR, STREAM_CUT, Interaction
from signalvault.screening import GuardrailUnavailable

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format `generate_latest` writes
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
MAX_SERIES = 1000  # distinct label sets per metric before new ones are folded into "other"
BREAKER_STATES = ("closed", "open", "half_open")
GUARDRAIL_UNAVAILABLE = GuardrailUnavailable.code

# Breaker state per provider name ("closed", "open", "half_open"), read at each scrape.
BreakerSource = Callable[[], Mapping[str, str]]


class _Children:
    """A metric's label children, cached by label tuple (prometheus-client's `labels()` validates
    and locks on every call, which is most of the per-request cost without the cache)."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._cache: dict[tuple[str, ...], Any] = {}

    def get(self, *labels: str) -> Any:
        child = self._cache.get(labels)
        if child is None:
            if len(self._cache) >= MAX_SERIES:
                labels = ("other",) * len(labels)
                child = self._cache.get(labels)
            if child is None:
                child = self._metric.labels(*labels)
                self._cache[labels] = child
        return child


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


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._requests = _Children(
            Counter(
                "signalvault_requests",
                "Finished /v1 requests by API, outcome and status class.",
                ["api", "outcome", "status_class"],
                registry=r,
            )
        )
        self._latency = _Children(
            Histogram(
                "signalvault_request_duration_seconds",
                "Time from request to recorded outcome (streams: to their end).",
                ["api"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self._ttfb = _Children(
            Histogram(
                "signalvault_request_ttfb_seconds",
                "Time from request to the provider's response headers.",
                ["api"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self._tokens = _Children(
            Counter(
                "signalvault_tokens",
                "Tokens of forwarded requests by model and kind (prompt, completion).",
                ["model", "kind"],
                registry=r,
            )
        )
        self._guardrails = _Children(
            Counter(
                "signalvault_guardrail_evaluations",
                "Guardrail rule evaluations by rule, action, direction and outcome.",
                ["rule", "action", "direction", "outcome"],
                registry=r,
            )
        )
        self._findings = _Children(
            Counter(
                "signalvault_guardrail_findings",
                "Guardrail findings by rule and finding type (never values).",
                ["rule", "type"],
                registry=r,
            )
        )
        self._engine_failures = _Children(
            Counter(
                "signalvault_guardrail_engine_failures",
                "Guardrail engine failures by the failure mode applied: closed (refused) or open "
                "(passed, bypass recorded).",
                ["mode"],
                registry=r,
            )
        )
        self._provider_errors = _Children(
            Counter(
                "signalvault_provider_errors",
                "Forwarded requests that failed at the provider, by provider and error code.",
                ["provider", "code"],
                registry=r,
            )
        )
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
        self.audit_pending = Gauge(
            "signalvault_audit_pending_ops",
            "Audit write operations queued and not yet committed.",
            registry=r,
        )
        self.alerts_sent = Counter(
            "signalvault_alerts_sent", "Alerts delivered to the webhook.", ["kind"], registry=r
        )
        self.alerts_dropped = Counter(
            "signalvault_alerts_dropped",
            "Alerts not delivered, by reason (queue_full, failed, shutdown).",
            ["reason"],
            registry=r,
        )
        self._breakers = _BreakerCollector()
        r.register(self._breakers)

    def set_breaker_source(self, source: BreakerSource | None) -> None:
        """Hook for the providers' circuit breakers: `source()` maps provider name to state."""
        self._breakers.source = source

    def set_pending_source(self, source: Callable[[], float]) -> None:
        self.audit_pending.set_function(source)

    def count_alert(self, kind: str) -> None:
        self.alerts_sent.labels(kind).inc()

    def count_dropped_alert(self, reason: str) -> None:
        self.alerts_dropped.labels(reason).inc()

    def observe(self, interaction: Interaction) -> None:
        """Count one finished interaction (the audit trail's observer calls this)."""
        api = interaction.api
        status = interaction.status_code
        status_class = f"{status // 100}xx" if status else "none"
        self._requests.get(api, interaction.outcome, status_class).inc()
        self._latency.get(api).observe(interaction.elapsed_ms() / 1000.0)
        if interaction.ttfb_ms is not None:
            self._ttfb.get(api).observe(interaction.ttfb_ms / 1000.0)
        model = interaction.model_used
        if model is not None:
            if interaction.prompt_tokens:
                self._tokens.get(model, "prompt").inc(interaction.prompt_tokens)
            if interaction.completion_tokens:
                self._tokens.get(model, "completion").inc(interaction.completion_tokens)
        if interaction.outcome in (PROVIDER_ERROR, STREAM_CUT):
            code = interaction.error_code or "unknown"
            if code != GUARDRAIL_UNAVAILABLE:  # the guardrail engine failed, not the provider
                self._provider_errors.get(interaction.provider or "none", code).inc()
        if interaction.error_code == GUARDRAIL_UNAVAILABLE:
            self._engine_failures.get("closed").inc()
        for evaluation in interaction.evaluations:
            rule = evaluation["rule"]
            if evaluation["outcome"] == "bypassed":
                self._engine_failures.get("open").inc()
            self._guardrails.get(
                rule, evaluation["action"], evaluation["direction"], evaluation["outcome"]
            ).inc()
            for kind, count in evaluation["kinds"].items():
                self._findings.get(rule, kind).inc(count)

    def observe_batch(self, ops: int, seconds: float, is_committed: bool) -> None:
        """The audit writer's `on_batch` hook."""
        if is_committed:
            self._audit_commit.observe(seconds)
            self._audit_batch.observe(ops)
        else:
            self._audit_failures.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
