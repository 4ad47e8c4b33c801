"""Per-request cost of the audit trail's observer: metrics (and alerts, disabled and enabled with
nothing to send) for one finished chat interaction under the default policy.

    python bench/metrics_cost.py [--requests N]

Prints microseconds per request, best of five runs, and for comparison the same updates made
through prometheus-client's own labelled metrics (children cached by label tuple), which is what
`Metrics` avoids on the request path.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry, Counter, Histogram

from signalvault.config import AlertSettings, Secret
from signalvault.gateway.metrics import Metrics
from signalvault.trail.alerts import Alerts
from signalvault.trail.audit import Interaction

RULES = (
    ("secrets", "secrets", "block", "input"),
    ("pii-input", "pii", "redact", "input"),
    ("prompt-injection", "prompt_injection", "log", "input"),
    ("token-limit", "token_limit", "block", "input"),
    ("secrets", "secrets", "block", "output"),
    ("pii-output", "pii", "log", "output"),
)


def interaction() -> Interaction:
    done = Interaction(
        api="chat",
        provider="openai",
        model_used="gpt-4o-mini",
        status_code=200,
        outcome="ok",
        prompt_tokens=120,
        completion_tokens=80,
        ttfb_ms=35.0,
    )
    for rule, detector, action, direction in RULES:
        done.evaluations.append(
            {
                "rule": rule,
                "detector": detector,
                "direction": direction,
                "action": action,
                "outcome": "pass",
                "kinds": {},
                "spans": [],
                "ms": 0.01,
            }
        )
    return done


def library_observer():
    """The same per-request updates through prometheus-client's locked metrics."""
    registry = CollectorRegistry()
    requests = Counter("r", "r", ["api", "outcome", "status"], registry=registry)
    latency = Histogram("l", "l", ["api"], registry=registry)
    ttfb = Histogram("t", "t", ["api"], registry=registry)
    tokens = Counter("k", "k", ["model", "kind"], registry=registry)
    rules = Counter("g", "g", ["rule", "action", "direction", "outcome"], registry=registry)
    cache: dict[tuple[object, tuple[str, ...]], object] = {}

    def child(metric, *labels):
        found = cache.get((metric, labels))
        if found is None:
            found = cache[(metric, labels)] = metric.labels(*labels)
        return found

    def observe(i: Interaction) -> None:
        child(requests, i.api, i.outcome, "2xx").inc()
        child(latency, i.api).observe(i.elapsed_ms() / 1000)
        child(ttfb, i.api).observe(i.ttfb_ms / 1000)
        child(tokens, i.model_used, "prompt").inc(i.prompt_tokens)
        child(tokens, i.model_used, "completion").inc(i.completion_tokens)
        for e in i.evaluations:
            child(rules, e["rule"], e["action"], e["direction"], e["outcome"]).inc()

    return observe


def per_request_us(observe, sample: Interaction, requests: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(requests):
            observe(sample)
        best = min(best, (time.perf_counter() - started) / requests)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    args = parser.parse_args()
    sample = interaction()
    metrics = Metrics()
    off = Alerts(AlertSettings())
    on = Alerts(AlertSettings(webhook_url=Secret("http://127.0.0.1:9/hook")))

    def both_off(i: Interaction) -> None:
        metrics.observe(i)
        off.observe(i)

    def both_on(i: Interaction) -> None:
        metrics.observe(i)
        on.observe(i)

    for name, observe in (
        ("metrics.observe", metrics.observe),
        ("+ alerts (no webhook)", both_off),
        ("+ alerts (webhook, clean)", both_on),
        ("prometheus-client metrics", library_observer()),
        ("baseline: empty call", lambda i: None),
    ):
        print(f"{name:28} {per_request_us(observe, sample, args.requests):6.2f} µs")


if __name__ == "__main__":
    main()
