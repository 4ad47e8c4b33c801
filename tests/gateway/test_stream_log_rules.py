"""A streamed answer's guard judges only the rules that change what leaves (block, redact) in its
hold-back windows; the rules that only log read the whole answer once, when it has ended, and
record what they would have recorded for the same answer sent whole."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
import pytest

from signalvault.config import GuardrailSettings
from signalvault.guardrails import pii as pii_module
from signalvault.guardrails.engine import Engine
from signalvault.guardrails.finding import Finding
from signalvault.guardrails.pii import PiiDetector
from signalvault.guardrails.policy import DEFAULT_RULES
from tests.conftest import make_settings, records, running_gateway

pytestmark = pytest.mark.anyio

# ~1,600 characters, an address early and one late: far more than one hold-back window apart.
FILLER = "The nightly export ran late again and the team is looking into the scheduler. " * 9
REPLY = f"Write to jane.doe@example.com first. {FILLER}Then copy ops@example.org on the answer."


def chat(text: str, **extra: object) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def output_evaluations(record: dict) -> dict[str, tuple[str, dict[str, int]]]:
    return {
        e["rule"]: (e["outcome"], e["kinds"])
        for e in orjson.loads(record["guardrails"])
        if e["direction"] == "output"
    }


async def test_log_only_rules_read_a_guarded_stream_once_and_log_as_for_a_whole_answer(
    tmp_path, mock_provider, mock, monkeypatch
):
    scanned: list[str] = []

    def counting_detector(**options: Any) -> Callable[[str], list[Finding]]:
        # The policy builds its detectors from this module attribute. (A compiled class's
        # methods cannot be patched: signalvault/compiled.py.)
        detector = PiiDetector(**options)

        def counting(text: str) -> list[Finding]:
            scanned.append(text)
            return detector(text)

        return counting

    monkeypatch.setattr(pii_module, "PiiDetector", counting_detector)
    # Pieces a few milliseconds apart, so they reach the gateway as separate chunks.
    monkeypatch.setattr(mock, "options", replace(mock.options, chunks=8, chunk_delay_ms=5))
    # The default policy's output rules: secrets block (so streams are guarded), PII is logged.
    # (Its input rule redacting PII would turn the addresses the mock echoes into placeholders.)
    rules = tuple(rule.as_dict() for rule in DEFAULT_RULES if rule.name != "pii-input")
    settings = replace(
        make_settings(tmp_path, mock_provider[1]), guardrails=GuardrailSettings(rules=rules)
    )
    async with running_gateway(settings) as (app, c, key):
        headers = {"Authorization": f"Bearer {key}"}
        whole = await c.post(
            "/v1/chat/completions", json=chat(f"[[mock:reply={REPLY}]]"), headers=headers
        )
        assert whole.status_code == 200
        scanned.clear()
        body = chat(f"[[mock:reply={REPLY}]] (streamed)", stream=True)
        async with c.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
            raw = b"".join([chunk async for chunk in response.aiter_bytes()])
        assert raw.rstrip().endswith(b"data: [DONE]")
        whole_record, streamed_record = records(app)
    # The PII detector read the streamed answer once, whole (and the prompt: no input rule).
    on_answer = [text for text in scanned if "[[mock:reply=" not in text]
    assert on_answer == [REPLY]
    logged = output_evaluations(streamed_record)
    assert logged == output_evaluations(whole_record)
    assert logged["pii-output"] == ("logged", {"EMAIL": 2})
    assert logged["secrets"] == ("pass", {})


async def test_log_only_rules_that_fail_after_the_stream_left_are_recorded_as_bypassed(
    tmp_path, mock_provider, mock, monkeypatch
):
    """Fail-closed cannot take back an answer that has left: the record says the rules that
    were to read it at its end did not."""
    real = Engine.scan

    def scan(self, segments, direction, context, redactor, rules=None):  # type: ignore[no-untyped-def]
        if rules and any(rule.action == "log" for rule in rules):
            raise RuntimeError("detector crashed")
        return real(self, segments, direction, context, redactor, rules)

    monkeypatch.setattr(Engine, "scan", scan)
    rules = tuple(rule.as_dict() for rule in DEFAULT_RULES)
    settings = make_settings(tmp_path, mock_provider[1])
    settings = replace(settings, guardrails=GuardrailSettings(rules=rules, failure_mode="closed"))
    async with running_gateway(settings) as (app, c, key):
        body = chat("[[mock:reply=all fine here]]", stream=True)
        headers = {"Authorization": f"Bearer {key}"}
        async with c.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
            raw = b"".join([chunk async for chunk in response.aiter_bytes()])
        metrics = (await c.get("/metrics")).text
        [record] = records(app)
    assert raw.rstrip().endswith(b"data: [DONE]")
    assert record["outcome"] == "ok"
    evaluations = output_evaluations(record)
    assert evaluations["secrets"] == ("pass", {})  # the windows' rule ran
    assert evaluations["*"] == ("bypassed", {})
    assert 'signalvault_guardrail_engine_failures_total{mode="open"} 1.0' in metrics
