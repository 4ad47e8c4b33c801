"""Guardrails through the proxy: blocks never reach the provider, redactions reach it without the
values, output rules apply to responses, and the trail records every evaluation without values."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import orjson
import pytest

from signalvault.app import create_app
from signalvault.config import GuardrailSettings
from tests.conftest import make_settings, records, running_gateway

pytestmark = pytest.mark.anyio

AWS_KEY = "AKIA" + "Q3VZ7TXK2MBN4PLD"
EMAIL = "jane.doe@example.com"


def with_rules(tmp_path, mock_provider, rules: tuple[dict, ...]):
    """Test settings whose guardrail policy is exactly `rules`."""
    settings = make_settings(tmp_path, mock_provider[1])
    return replace(settings, guardrails=GuardrailSettings(rules=rules))


def chat(text: str, **extra) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


async def test_prompt_with_aws_key_is_blocked_before_the_provider(client, gateway, api_key, mock):
    response = await client.post(
        "/v1/chat/completions",
        json=chat(f"deploy with {AWS_KEY} please"),
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == error["code"] == "guardrail_violation"
    assert "secrets" in error["message"] and "AWS_ACCESS_KEY_ID" in error["message"]
    assert AWS_KEY not in response.text
    assert mock.stats()["total"] == 0
    [record] = records(gateway)
    assert record["outcome"] == "blocked" and record["status_code"] == 400
    assert record["policy_version"] >= 1
    evaluations = orjson.loads(record["guardrails"])
    secrets = next(e for e in evaluations if e["rule"] == "secrets")
    assert secrets["outcome"] == "blocked" and secrets["kinds"] == {"AWS_ACCESS_KEY_ID": 1}
    assert AWS_KEY not in record["guardrails"]
    prompt, _ = gateway.services.trail.decrypt(record)
    assert AWS_KEY.encode() not in prompt and b"[AWS_ACCESS_KEY_ID_1]" in prompt


async def test_a_blocked_requests_record_is_synced_when_committed(client, gateway, api_key):
    """Evidence that a guardrail acted: nothing waits for the record of a refused request, yet
    its batch commits synced, unlike completions (which may ride a relaxed commit)."""
    writer = gateway.services.store.writer
    execute = writer._execute
    batches: list[tuple[set[str], bool]] = []

    def noted(ops, durable):
        batches.append(({op.params.get("id") for op in ops}, durable))
        execute(ops, durable)

    writer._execute = noted
    try:
        for _ in range(2):  # the second: its data key exists, so its record is written behind
            response = await client.post(
                "/v1/chat/completions",
                json=chat(f"deploy with {AWS_KEY} please"),
                headers={"Authorization": f"Bearer {api_key}"},
            )
            assert response.status_code == 400
            await asyncio.sleep(0.05)  # committed by the commit thread, not by a flush
    finally:
        del writer._execute
    record_id = response.headers["x-signalvault-request-id"]
    synced = [durable for ids, durable in batches if record_id in ids]
    assert synced and all(synced)


async def test_anthropic_block_uses_the_anthropic_error_shape(client, api_key, mock):
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 10,
        "system": f"key {AWS_KEY}",
        "messages": [{"role": "user", "content": "hi"}],
    }
    response = await client.post("/v1/messages", json=body, headers={"x-api-key": api_key})
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "guardrail_violation"
    assert mock.stats()["total"] == 0


async def test_pii_is_redacted_before_it_leaves_with_stable_placeholders(
    client, gateway, api_key, mock
):
    text = f"mail {EMAIL} and again {EMAIL}, not bob.roe@example.org"
    response = await client.post(
        "/v1/chat/completions", json=chat(text), headers={"Authorization": f"Bearer {api_key}"}
    )
    assert response.status_code == 200
    sent = mock.recent_requests()[-1]["body"]["messages"][0]["content"]
    assert sent == "mail [EMAIL_1] and again [EMAIL_1], not [EMAIL_2]"
    assert EMAIL not in orjson.dumps(mock.recent_requests()).decode()
    [record] = records(gateway)
    assert record["outcome"] == "ok"
    pii = next(e for e in orjson.loads(record["guardrails"]) if e["rule"] == "pii-input")
    assert pii["outcome"] == "redacted" and pii["kinds"] == {"EMAIL": 3}
    prompt, _ = gateway.services.trail.decrypt(record)
    assert EMAIL.encode() not in prompt


async def test_restore_maps_placeholders_back_for_the_caller_only(tmp_path, mock_provider, mock):
    rules = (
        {
            "name": "pii",
            "detector": "pii",
            "action": "redact",
            "direction": "input",
            "options": {"types": ["EMAIL"], "restore": True},
        },
    )
    settings = with_rules(tmp_path, mock_provider, rules)
    async with running_gateway(settings) as (app, c, key):
        response = await c.post(
            "/v1/chat/completions",
            json=chat(f"hi {EMAIL}"),
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.json()["choices"][0]["message"]["content"] == f"You said: hi {EMAIL}"
        assert mock.recent_requests()[-1]["body"]["messages"][0]["content"] == "hi [EMAIL_1]"
        [record] = records(app)
        _, stored = app.services.trail.decrypt(record)
        assert EMAIL.encode() not in stored and b"[EMAIL_1]" in stored


async def test_secret_in_a_response_is_blocked_on_output(tmp_path, mock_provider, mock):
    rules = (
        {"name": "no-secrets-out", "detector": "secrets", "action": "block", "direction": "output"},
    )
    settings = with_rules(tmp_path, mock_provider, rules)
    async with running_gateway(settings) as (app, c, key):
        response = await c.post(
            "/v1/chat/completions",
            json=chat(f"[[mock:reply=use {AWS_KEY}]]"),
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "guardrail_violation"
        assert AWS_KEY not in response.text
        assert mock.stats()["total"] == 1  # the provider answered; the caller never saw it
        [record] = records(app)
        assert record["outcome"] == "blocked"
        _, stored = app.services.trail.decrypt(record)
        assert AWS_KEY.encode() not in stored


async def test_policy_versions_follow_the_configured_rules(tmp_path, mock_provider):
    base = make_settings(tmp_path, mock_provider[1])
    versions = []
    for rules in (
        (),
        ({"detector": "pii", "action": "log"},),
        ({"detector": "pii", "action": "log"},),
    ):
        guardrails = GuardrailSettings(rules=rules, two_person_review=False)
        app = create_app(replace(base, guardrails=guardrails))
        await app.startup()
        versions.append(app.services.store.active_policy()[0])
        await app.shutdown()
    assert versions == [1, 2, 2]  # unchanged rules keep their version (review off)


async def test_secret_split_across_stream_chunks_never_reaches_the_caller(
    tmp_path, mock_provider, mock
):
    rules = (
        {"name": "no-secrets-out", "detector": "secrets", "action": "block", "direction": "output"},
    )
    settings = with_rules(tmp_path, mock_provider, rules)
    async with running_gateway(settings) as (app, c, key):
        body = chat(f"[[mock:reply=here it is: {AWS_KEY} enjoy]]", stream=True)
        async with c.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as response:
            raw = b"".join([chunk async for chunk in response.aiter_bytes()])
        # The mock sent the reply in 8 pieces, so the key was split across events.
        for i in range(len(AWS_KEY) - 7):
            assert AWS_KEY[i : i + 8].encode() not in raw
        assert b'"code":"guardrail_violation"' in raw and b"[DONE]" not in raw
        [record] = records(app)
        assert record["outcome"] == "blocked" and record["is_stream"]
        out = next(e for e in orjson.loads(record["guardrails"]) if e["direction"] == "output")
        assert out["outcome"] == "blocked" and out["kinds"] == {"AWS_ACCESS_KEY_ID": 1}
        _, stored = app.services.trail.decrypt(record)
        assert AWS_KEY.encode() not in stored


async def test_streamed_pii_is_redacted_in_flight_and_restored(tmp_path, mock_provider, mock):
    rules = (
        {
            "name": "pii",
            "detector": "pii",
            "action": "redact",
            "options": {"types": ["EMAIL"], "restore": True},
        },
    )
    settings = with_rules(tmp_path, mock_provider, rules)
    async with running_gateway(settings) as (app, c, key):
        body = chat(f"write to {EMAIL} today", stream=True)
        async with c.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as response:
            raw = b"".join([chunk async for chunk in response.aiter_bytes()])
        text = "".join(
            (orjson.loads(line[6:])["choices"][0]["delta"].get("content") or "")
            for line in raw.split(b"\n")
            if line.startswith(b"data: {")
        )
        assert text == f"You said: write to {EMAIL} today"  # restored for the caller
        assert (
            mock.recent_requests()[-1]["body"]["messages"][0]["content"]
            == "write to [EMAIL_1] today"
        )
        [record] = records(app)
        _, stored = app.services.trail.decrypt(record)
        assert EMAIL.encode() not in stored and b"[EMAIL_1]" in stored


async def test_log_only_output_rules_leave_streams_untouched_and_still_record(
    tmp_path, mock_provider, mock
):
    rules = ({"name": "pii-log", "detector": "pii", "action": "log", "direction": "output"},)
    settings = with_rules(tmp_path, mock_provider, rules)
    async with running_gateway(settings) as (app, c, key):
        body = chat(f"[[mock:reply=contact {EMAIL} now]]", stream=True)
        async with c.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as response:
            raw = b"".join([chunk async for chunk in response.aiter_bytes()])
        assert raw.rstrip().endswith(b"data: [DONE]")
        [record] = records(app)
        assert record["outcome"] == "ok"
        [logged] = orjson.loads(record["guardrails"])
        assert logged["outcome"] == "logged" and logged["kinds"] == {"EMAIL": 1}
