"""GET /metrics: Prometheus text fed by the audit trail's observer, per-app registries, the
optional bearer token, the audit writer's counters and the provider breaker hook."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from signalvault.config import Secret, ServerSettings
from signalvault.gateway import metrics as metrics_module
from signalvault.gateway.metrics import Metrics
from signalvault.mock_provider import MockOptions
from signalvault.trail.audit import Interaction
from tests.conftest import make_settings, records, running_gateway

pytestmark = pytest.mark.anyio

AWS_KEY = "AKIA" + "Q3VZ7TXK2MBN4PLD"


def chat(text: str, **extra) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_requests_tokens_guardrails_and_audit_writes_are_counted(client, gateway, api_key):
    auth = {"Authorization": f"Bearer {api_key}"}
    assert (await client.post("/v1/chat/completions", json=chat("hello"), headers=auth)).is_success
    stream = await client.post("/v1/chat/completions", json=chat("hi", stream=True), headers=auth)
    assert stream.is_success
    blocked = await client.post("/v1/chat/completions", json=chat(f"key {AWS_KEY}"), headers=auth)
    assert blocked.status_code == 400
    denied = await client.post("/v1/chat/completions", json=chat("hi"))
    assert denied.status_code == 401
    records(gateway)  # flushes the queued outcome writes

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert AWS_KEY not in response.text and api_key not in response.text
    scraped = samples(response.text)
    requests = "signalvault_requests_total"
    assert value(scraped, requests, api="chat", outcome="ok", status_class="2xx") == 2
    assert value(scraped, requests, api="chat", outcome="blocked", status_class="4xx") == 1
    assert value(scraped, requests, api="chat", outcome="unauthorized", status_class="4xx") == 1
    assert value(scraped, "signalvault_request_duration_seconds_count", api="chat") == 4
    assert value(scraped, "signalvault_request_ttfb_seconds_count", api="chat") == 2
    assert value(scraped, "signalvault_tokens_total", model="gpt-4o-mini", kind="prompt") > 0
    assert value(scraped, "signalvault_tokens_total", model="gpt-4o-mini", kind="completion") > 0
    blocked_rule = {"rule": "secrets", "action": "block", "direction": "input"}
    assert (
        value(scraped, "signalvault_guardrail_evaluations_total", **blocked_rule, outcome="blocked")
        == 1
    )
    assert (
        value(scraped, "signalvault_guardrail_evaluations_total", **blocked_rule, outcome="pass")
        == 2
    )
    assert (
        value(
            scraped,
            "signalvault_guardrail_findings_total",
            rule="secrets",
            type="AWS_ACCESS_KEY_ID",
        )
        == 1
    )
    assert value(scraped, "signalvault_audit_commit_seconds_count") >= 1
    assert value(scraped, "signalvault_audit_batch_ops_sum") >= 4  # three records, key use, ...
    assert ("signalvault_audit_pending_ops", ()) in scraped
    assert value(scraped, "signalvault_audit_write_failures_total") == 0


async def test_provider_errors_are_counted_by_provider_and_code(
    client, gateway, api_key, mock, monkeypatch
):
    monkeypatch.setattr(mock, "options", MockOptions(fail_rate=1.0, fail_codes=(503,)))
    auth = {"Authorization": f"Bearer {api_key}"}
    response = await client.post("/v1/chat/completions", json=chat("hello"), headers=auth)
    assert response.status_code == 503
    scraped = samples((await client.get("/metrics")).text)
    assert (
        value(scraped, "signalvault_provider_errors_total", provider="openai", code="provider_503")
        == 1
    )
    assert (
        value(
            scraped,
            "signalvault_requests_total",
            api="chat",
            outcome="provider_error",
            status_class="5xx",
        )
        == 1
    )


async def test_metrics_token_is_required_when_configured(tmp_path, mock_provider):
    settings = make_settings(tmp_path, mock_provider[1])
    settings = replace(settings, server=ServerSettings(metrics_token=Secret("scrape-me")))
    async with running_gateway(settings) as (_, c, _key):
        assert (await c.get("/metrics")).status_code == 401
        wrong = await c.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        right = await c.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert right.status_code == 200 and "signalvault_requests" in right.text


async def test_metrics_answer_get_only(client):
    response = await client.post("/metrics")
    assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD"


def test_each_app_has_its_own_registry():
    first, second = Metrics(), Metrics()
    first.observe(Interaction(api="chat", outcome="ok", status_code=200))
    assert b'outcome="ok"' in first.render()
    assert b'outcome="ok"' not in second.render()


def test_new_label_sets_past_the_cap_fold_into_other(monkeypatch):
    monkeypatch.setattr(metrics_module, "MAX_SERIES", 2)
    metrics = Metrics()
    for model in ("m1", "m2", "m3", "m4"):
        metrics.observe(
            Interaction(
                api="chat", outcome="ok", status_code=200, model_used=model, prompt_tokens=1
            )
        )
    scraped = samples(metrics.render().decode())
    assert value(scraped, "signalvault_tokens_total", model="m1", kind="prompt") == 1
    assert value(scraped, "signalvault_tokens_total", model="m3", kind="prompt") == 0
    assert value(scraped, "signalvault_tokens_total", model="other", kind="other") == 2


def test_breaker_state_comes_from_the_hook():
    metrics = Metrics()
    assert b"breaker_state{" not in metrics.render()  # no source yet: the family is empty
    metrics.set_breaker_source(lambda: {"openai": "open", "anthropic": "closed"})
    scraped = samples(metrics.render().decode())
    name = "signalvault_provider_breaker_state"
    assert value(scraped, name, provider="openai", state="open") == 1
    assert value(scraped, name, provider="openai", state="closed") == 0
    assert value(scraped, name, provider="anthropic", state="closed") == 1


def test_failed_audit_batches_are_counted():
    metrics = Metrics()
    metrics.observe_batch(3, 0.002, True)
    metrics.observe_batch(5, 0.0, False)
    scraped = samples(metrics.render().decode())
    assert value(scraped, "signalvault_audit_batch_ops_sum") == 3
    assert value(scraped, "signalvault_audit_write_failures_total") == 1


async def test_the_guardrail_scan_cache_is_counted(client, gateway, api_key):
    auth = {"Authorization": f"Bearer {api_key}"}
    prompt = "Please summarise the quarterly report for the board, section by section. " * 3
    for _ in range(3):
        response = await client.post("/v1/chat/completions", json=chat(prompt), headers=auth)
        assert response.is_success
    scraped = samples((await client.get("/metrics")).text)
    misses = value(scraped, "signalvault_guardrail_scan_cache_misses_total")
    hits = value(scraped, "signalvault_guardrail_scan_cache_hits_total")
    # Each input detector scanned the prompt once; the two repeats were answered from the cache.
    assert misses > 0 and hits == 2 * misses
    assert value(scraped, "signalvault_guardrail_scan_cache_entries") == misses
