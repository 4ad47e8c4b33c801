"""The guardrail engine's failure mode (SPEC §6): `closed` refuses, `open` passes, records the
bypass on the audit record and raises an alert."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from signalvault.config import AlertSettings, GuardrailSettings, Secret
from signalvault.guardrails.engine import Engine
from tests.conftest import make_settings, records, running_gateway
from tests.trail.test_alerts import webhook  # noqa: F401 (the fixture)

pytestmark = pytest.mark.anyio


def chat(text: str, **extra) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def failing_engine(monkeypatch, direction: str | None = None) -> None:
    """Make the engine raise (on every scan, or on one direction's)."""
    real = Engine.scan

    def scan(self, segments, scan_direction, context, redactor, rules=None):
        if direction is None or scan_direction == direction:
            raise RuntimeError("detector crashed")
        return real(self, segments, scan_direction, context, redactor, rules)

    monkeypatch.setattr(Engine, "scan", scan)


def settings_for(tmp_path, mock_provider, mode: str, webhook_url: str | None = None):
    settings = make_settings(tmp_path, mock_provider[1])
    settings = replace(settings, guardrails=GuardrailSettings(failure_mode=mode))
    if webhook_url:
        settings = replace(settings, alerts=AlertSettings(webhook_url=Secret(webhook_url)))
    return settings


def bypasses(record: dict) -> list[dict]:
    return [e for e in orjson.loads(record["guardrails"]) if e["outcome"] == "bypassed"]


async def test_closed_mode_refuses_and_forwards_nothing(tmp_path, mock_provider, mock, monkeypatch):
    failing_engine(monkeypatch)
    async with running_gateway(settings_for(tmp_path, mock_provider, "closed")) as (app, c, key):
        response = await c.post(
            "/v1/chat/completions", json=chat("hello"), headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "guardrail_unavailable"
        assert mock.stats()["total"] == 0
        [record] = records(app)
        metrics = (await c.get("/metrics")).text
    assert record["outcome"] == "rejected" and record["error_code"] == "guardrail_unavailable"
    assert 'signalvault_guardrail_engine_failures_total{mode="closed"} 1.0' in metrics


async def test_closed_mode_withholds_a_response_when_output_screening_fails(
    tmp_path, mock_provider, mock, monkeypatch
):
    failing_engine(monkeypatch, "output")
    async with running_gateway(settings_for(tmp_path, mock_provider, "closed")) as (app, c, key):
        response = await c.post(
            "/v1/chat/completions", json=chat("hello"), headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 503 and "You said" not in response.text
        [record] = records(app)
    assert mock.stats()["total"] == 1
    assert record["error_code"] == "guardrail_unavailable"


async def test_open_mode_passes_records_the_bypass_and_alerts(
    tmp_path,
    mock_provider,
    mock,
    monkeypatch,
    webhook,  # noqa: F811 (the fixture)
):
    failing_engine(monkeypatch)
    settings = settings_for(tmp_path, mock_provider, "open", webhook.url)
    async with running_gateway(settings) as (app, c, key):
        response = await c.post(
            "/v1/chat/completions", json=chat("hello"), headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"] == "You said: hello"
        assert mock.stats()["total"] == 1
        [record] = records(app)
        [alert] = webhook.wait_for(1)
        metrics = (await c.get("/metrics")).text
    assert record["outcome"] == "ok"
    assert [(e["direction"], e["detector"]) for e in bypasses(record)] == [
        ("input", "engine"),
        ("output", "engine"),
    ]
    assert alert["kind"] == "guardrail_bypass" and alert["request_id"] == record["id"]
    assert alert["directions"] == ["input", "output"]
    assert 'signalvault_guardrail_engine_failures_total{mode="open"} 2.0' in metrics


async def test_open_mode_lets_a_stream_pass_when_its_guard_fails(
    tmp_path, mock_provider, mock, monkeypatch
):
    failing_engine(monkeypatch, "output")  # the stream guard's scans fail, mid-stream
    async with running_gateway(settings_for(tmp_path, mock_provider, "open")) as (app, c, key):
        response = await c.post(
            "/v1/chat/completions",
            json=chat("hello", stream=True),
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 200
        text = "".join(
            orjson.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            for line in response.text.splitlines()
            if line.startswith("data: {") and '"choices":[{' in line
        )
        assert text == "You said: hello"
        [record] = records(app)
    assert record["outcome"] == "ok"
    assert [e["direction"] for e in bypasses(record)] == ["output"]
