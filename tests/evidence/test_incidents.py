"""Incidents from real alerts (SPEC §7c): alerts of one kind and scope open or join an incident
with its linked records; people acknowledge and resolve it with a note; the times are measured;
webhooks carry incident events, generic or Slack-shaped, signed like alerts."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace

import pytest
from click.testing import CliRunner

from signalvault.cli.main import cli
from signalvault.config import AlertSettings, IncidentSettings, Secret
from signalvault.errors import BadRequest, Conflict
from signalvault.evidence.incidents import BreakerStorm
from signalvault.store import RecordFilter
from tests.conftest import running_gateway
from tests.evidence.helpers import AWS_KEY, PATHS, auth, body
from tests.trail.test_alerts import Webhook, webhook  # noqa: F401 (the fixture)

pytestmark = pytest.mark.anyio
SIGNING = "whsec-test-1"


def alerting(settings, hook: Webhook, fmt: str = "generic"):
    return replace(
        settings,
        alerts=AlertSettings(webhook_url=Secret(hook.url), signing_secret=Secret(SIGNING)),
        incidents=IncidentSettings(webhook_url=Secret(hook.url), webhook_format=fmt),
    )


async def test_blocked_secrets_open_one_incident_that_is_acknowledged_and_resolved(
    settings,
    mock,
    webhook,  # noqa: F811
):
    async with running_gateway(alerting(settings, webhook)) as (app, client, key):
        ids = []
        for _ in range(2):
            answer = await client.post(
                PATHS["chat"], json=body("chat", f"use {AWS_KEY}"), headers=auth(key)
            )
            assert answer.status_code == 400
            ids.append(answer.headers["x-signalvault-request-id"])
        assert app.evidence.desk is not None
        app.evidence.desk.drain()
        assert app.services is not None
        book = app.services.incidents
        [incident] = book.list()
        assert (incident.kind, incident.scope, incident.status, incident.count) == (
            "secrets_blocked",
            "project:default",
            "open",
            2,
        )
        assert book.get(incident.id).record_ids == tuple(ids)
        assert incident.summary["findings"] == {"AWS_ACCESS_KEY_ID": 1}
        acked = book.acknowledge(incident.id, "account:sec@example.com", "looking")
        with pytest.raises(Conflict):
            book.acknowledge(incident.id, "account:sec@example.com")
        with pytest.raises(BadRequest):
            book.resolve(incident.id, "account:sec@example.com", "  ")
        resolved = book.resolve(incident.id, "account:sec@example.com", "key rotated at AWS")
        # A new alert after resolution opens a new incident instead of reopening the old one.
        await client.post(PATHS["chat"], json=body("chat", f"use {AWS_KEY}"), headers=auth(key))
        app.evidence.desk.drain()
        assert len(book.list()) == 2
        app.services.store.flush()
        trail = app.services.store.list_records(RecordFilter(), limit=200)
        events = [r for r in trail if r["kind"].startswith("incident_")]
        # Alerts and incident events travel on two queues: wait for the third incident event.
        received = webhook.wait_until(
            lambda bodies: sum(b.get("kind") == "incident" for b in bodies) >= 3
        )
    assert acked.status == "acknowledged" and acked.seconds_to_acknowledge is not None
    assert resolved.status == "resolved" and resolved.resolution_note == "key rotated at AWS"
    assert resolved.seconds_to_resolve >= resolved.seconds_to_acknowledge >= 0
    assert sorted(e["kind"] for e in events) == ["incident_acknowledged", "incident_resolved"]
    assert {e["actor"] for e in events} == {"account:sec@example.com"}
    incident_events = [b for b in received if b.get("kind") == "incident"]
    assert [b["event"] for b in incident_events][:3] == ["opened", "acknowledged", "resolved"]
    assert AWS_KEY not in str(received)
    index = next(i for i, b in enumerate(received) if b.get("kind") == "incident")
    headers, raw = webhook.headers[index], webhook.bodies[index]
    signed = headers["x-signalvault-timestamp"].encode() + b"." + raw
    expected = hmac.new(SIGNING.encode(), signed, hashlib.sha256).hexdigest()
    assert headers["x-signalvault-signature"] == f"sha256={expected}"


async def test_incident_webhooks_can_take_the_chat_tool_shape(settings, mock, webhook):  # noqa: F811
    async with running_gateway(alerting(settings, webhook, "slack")) as (app, client, key):
        await client.post(PATHS["chat"], json=body("chat", f"use {AWS_KEY}"), headers=auth(key))
        assert app.evidence.desk is not None
        app.evidence.desk.drain()
        received = webhook.wait_for(2)
    [message] = [b for b in received if b.get("kind") == "incident"]
    assert message["text"].startswith(":rotating_light: Incident opened: secrets_blocked")
    header, section = message["blocks"][:2]
    assert header["type"] == "header" and section["type"] == "section"
    assert {"type": "mrkdwn", "text": "*Scope*\nproject:default"} in section["fields"]


async def test_the_cli_lists_shows_acknowledges_and_resolves(settings, mock, tmp_path):
    config = tmp_path / "sv.toml"
    config.write_text(f'[store]\ndata_dir = "{settings.store.data_dir}"\n')
    async with running_gateway(settings) as (app, client, key):
        await client.post(PATHS["chat"], json=body("chat", f"use {AWS_KEY}"), headers=auth(key))
        assert app.evidence.desk is not None
        app.evidence.desk.drain()
    runner = CliRunner()
    listed = runner.invoke(cli, ["incidents", "list", "--config", str(config), "--json"])
    assert listed.exit_code == 0, listed.output
    import orjson

    [incident] = [orjson.loads(line) for line in listed.output.splitlines() if line]
    shown = runner.invoke(cli, ["incidents", "show", incident["id"], "--config", str(config)])
    assert "secrets_blocked" in shown.output and "records" in shown.output
    acked = runner.invoke(cli, ["incidents", "ack", incident["id"], "--config", str(config)])
    assert acked.exit_code == 0 and "acknowledged" in acked.output
    missing_note = runner.invoke(
        cli, ["incidents", "resolve", incident["id"], "--config", str(config)]
    )
    assert missing_note.exit_code == 2  # --note is required
    done = runner.invoke(
        cli, ["incidents", "resolve", incident["id"], "--note", "rotated", "--config", str(config)]
    )
    assert done.exit_code == 0 and "resolved" in done.output
    again = runner.invoke(
        cli, ["incidents", "resolve", incident["id"], "--note", "x", "--config", str(config)]
    )
    assert again.exit_code == 1 and "already resolved" in again.output


def test_breakers_opening_together_make_one_storm_alert():
    raised = []
    now = [0.0]
    storm = BreakerStorm(
        IncidentSettings(storm_threshold=3, storm_window_seconds=60),
        raised.append,
        clock=lambda: now[0],
    )
    for name in ("a", "b"):
        storm.opened(name)
    assert raised == []
    now[0] = 10
    storm.opened("c")
    storm.opened("a")  # still within the same storm: no second alert
    assert raised == [["a", "b", "c"]]
    now[0] = 200
    for name in ("x", "y", "z"):
        storm.opened(name)
    assert raised[-1] == ["x", "y", "z"]


async def test_a_failed_verification_opens_a_critical_incident(settings, mock, tmp_path):
    config = tmp_path / "sv.toml"
    config.write_text(f'[store]\ndata_dir = "{settings.store.data_dir}"\n')
    async with running_gateway(settings) as (_app, client, key):
        await client.post(PATHS["chat"], json=body("chat", "hello"), headers=auth(key))
    runner = CliRunner()
    assert runner.invoke(cli, ["audit", "seal", "--config", str(config)]).exit_code == 0
    import sqlite3

    db = sqlite3.connect(settings.store.data_dir / "signalvault.db")
    db.execute("UPDATE audit_records SET model_used = 'tampered' WHERE seq = 1")
    db.commit()
    db.close()
    verified = runner.invoke(cli, ["audit", "verify", "--config", str(config)])
    assert verified.exit_code == 3
    listed = runner.invoke(cli, ["incidents", "list", "--config", str(config), "--json"])
    assert '"kind":"verification_failed"' in listed.output
    assert '"severity":"critical"' in listed.output and '"scope":"trail"' in listed.output
