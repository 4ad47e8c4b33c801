"""Guardrail policy change control: a change takes effect only once a second account approves it,
then on the very next request of every gateway process without a restart; rejections, rollbacks,
stale proposals, the diff, audit events, review off, config rules, and the CLI."""

from __future__ import annotations

import logging
import os
from dataclasses import replace

import orjson
import pytest
from click.testing import CliRunner

from signalvault.app import create_app, open_services
from signalvault.cli import cli
from signalvault.config import GuardrailSettings, Settings, StoreSettings
from signalvault.errors import ConfigError
from signalvault.guardrails.policy import DEFAULT_RULES
from signalvault.policies import PolicyConflict, PolicyService, SelfApproval
from signalvault.store import RecordFilter
from tests.conftest import make_settings, running_gateway

pytestmark = pytest.mark.anyio

ALICE, BOB = "account:alice@example.com", "account:bob@example.com"
CODENAME = "bluepelican"  # the word the proposed rule blocks
ALLOWED_VALUE = "ops-allow@example.com"  # an option value that must never reach the trail
BLOCK_CODENAME = {
    "name": "no-codename",
    "detector": "custom",
    "action": "block",
    "direction": "input",
    "options": {"keywords": [CODENAME]},
}


def default_rules() -> list[dict]:
    return [rule.as_dict() for rule in DEFAULT_RULES]


def with_codename_rule() -> list[dict]:
    return [*default_rules(), BLOCK_CODENAME]


def service_of(app, review: bool = True) -> PolicyService:
    return PolicyService(app.services.store, app.services.trail, review=review)


def events(app, *kinds: str) -> list[dict]:
    app.services.store.flush()
    rows = app.services.store.list_records(RecordFilter(), limit=10_000)
    return [row for row in reversed(rows) if row["kind"] in kinds]


async def ask(client, key: str, text: str):
    return await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
        headers={"Authorization": f"Bearer {key}"},
    )


async def test_unapproved_change_never_applies_and_approval_applies_on_the_next_request(
    settings, mock
):
    async with running_gateway(settings) as (app, client, key):
        second = create_app(settings)  # another gateway process on the same data directory
        await second.startup()
        try:
            import httpx

            transport = httpx.ASGITransport(app=second)
            async with httpx.AsyncClient(transport=transport, base_url="http://g2") as other:
                service = service_of(app)
                proposal = service.propose(with_codename_rule(), ALICE, "block the codename")
                assert proposal.status == "proposed" and proposal.base_version == 1
                # Proposed, not approved: both gateways still let it through.
                for c in (client, other, client):
                    assert (await ask(c, key, f"about {CODENAME} today")).status_code == 200

                service.approve(proposal.version, BOB)
                # The very next request, in both processes, without a restart.
                for c in (client, other):
                    blocked = await ask(c, key, f"about {CODENAME} today")
                    assert blocked.status_code == 400
                    assert blocked.json()["error"]["code"] == "guardrail_violation"
                    assert "no-codename" in blocked.json()["error"]["message"]
                assert (await ask(other, key, "harmless")).status_code == 200
        finally:
            await second.shutdown()
        interactions = events(app, "interaction")
        versions = [(r["outcome"], r["policy_version"]) for r in interactions]
        assert versions == [("ok", 1)] * 3 + [("blocked", 2)] * 2 + [("ok", 2)]
    assert mock.stats()["total"] == 4  # blocked requests never reached the provider


async def test_the_proposer_cannot_approve_their_own_change(gateway):
    service = service_of(gateway)
    proposal = service.propose(with_codename_rule(), ALICE)
    with pytest.raises(SelfApproval):
        service.approve(proposal.version, ALICE)
    assert service.get(proposal.version).status == "proposed"
    assert service.active().version == 1
    assert events(gateway, "policy_approved", "policy_activated") == []


async def test_rejected_proposal_is_final_and_never_active(gateway):
    service = service_of(gateway)
    proposal = service.propose(with_codename_rule(), ALICE)
    rejected = service.reject(proposal.version, BOB, "too broad")
    assert (rejected.status, rejected.decided_by, rejected.decision_reason) == (
        "rejected",
        BOB,
        "too broad",
    )
    with pytest.raises(PolicyConflict):
        service.approve(proposal.version, BOB)
    with pytest.raises(PolicyConflict):
        service.reject(proposal.version, BOB)
    assert service.active().version == 1


async def test_rollback_is_a_reviewed_change(gateway):
    service = service_of(gateway)
    v2 = service.approve(service.propose(with_codename_rule(), ALICE).version, BOB)
    rollback = service.rollback(1, ALICE)
    assert (rollback.status, rollback.rollback_of, rollback.base_version) == ("proposed", 1, 2)
    assert service.active().version == v2.version  # not yet
    assert rollback.digest == service.get(1).digest
    with pytest.raises(SelfApproval):
        service.approve(rollback.version, ALICE)
    service.approve(rollback.version, BOB)
    active = service.active()
    assert active.version == rollback.version and active.digest == service.get(1).digest
    assert [v.status for v in service.versions()] == ["superseded", "superseded", "active"]
    with pytest.raises(ConfigError, match="already the active policy"):
        service.rollback(1, ALICE)


async def test_a_stale_proposal_cannot_be_approved(gateway):
    service = service_of(gateway)
    first = service.propose(with_codename_rule(), ALICE)
    second = service.propose([*default_rules()[:2]], ALICE)
    service.approve(first.version, BOB)
    with pytest.raises(PolicyConflict, match="proposed against version 1"):
        service.approve(second.version, BOB)
    assert service.active().version == first.version


async def test_every_step_is_an_audit_event_without_option_values(gateway):
    service = service_of(gateway)
    rules = with_codename_rule()
    rules[1] = {**rules[1], "options": {"allow": [ALLOWED_VALUE]}}  # pii-input changed
    proposal = service.propose(rules, ALICE, "ticket SEC-12")
    service.approve(proposal.version, BOB)
    rejected = service.propose(default_rules(), ALICE)
    service.reject(rejected.version, BOB, "keep it")
    trail = events(
        gateway, "policy_proposed", "policy_approved", "policy_rejected", "policy_activated"
    )
    assert [(e["kind"], e["actor"]) for e in trail] == [
        ("policy_proposed", ALICE),
        ("policy_approved", BOB),
        ("policy_activated", BOB),
        ("policy_proposed", ALICE),
        ("policy_rejected", BOB),
    ]
    proposed, approved, activated, _, rejected_event = (orjson.loads(e["details"]) for e in trail)
    assert proposed["version"] == 2 and proposed["base_version"] == 1
    assert proposed["digest"] == service.get(2).digest and proposed["reason"] == "ticket SEC-12"
    assert proposed["changes"] == {
        "added": ["no-codename"],
        "removed": [],
        "changed": {"pii-input": ["options.allow"]},
        "reordered": False,
    }
    assert approved["proposed_by"] == ALICE and approved["version"] == 2
    assert activated == {
        "version": 2,
        "digest": service.get(2).digest,
        "base_version": 1,
        "proposed_by": ALICE,
        "approved_by": BOB,
        "how": "approved",
    }
    assert rejected_event["version"] == 3 and rejected_event["reason"] == "keep it"
    for event in trail:  # rule names and field names only, never option values
        assert ALLOWED_VALUE not in event["details"] and CODENAME not in event["details"]


async def test_review_off_activates_at_once_and_records_it(tmp_path, mock_provider):
    settings = make_settings(tmp_path, mock_provider[1])
    settings = replace(settings, guardrails=GuardrailSettings(two_person_review=False))
    async with running_gateway(settings) as (app, client, key):
        service = service_of(app, review=False)
        version = service.propose(with_codename_rule(), ALICE)
        assert version.status == "active" and version.decided_by == ALICE
        assert (await ask(client, key, f"the {CODENAME} file")).status_code == 400
        trail = events(app, "policy_proposed", "policy_activated")
        assert [e["kind"] for e in trail] == ["policy_proposed", "policy_activated"]
        assert orjson.loads(trail[0]["details"])["review"] is False
        assert orjson.loads(trail[1]["details"])["how"] == "review off"


async def test_config_rules_do_not_bypass_review(tmp_path, mock_provider, caplog):
    base = make_settings(tmp_path, mock_provider[1])
    async with running_gateway(base) as (app, _, _):
        assert service_of(app).active().source == "default"
    configured = replace(base, guardrails=GuardrailSettings(rules=tuple(with_codename_rule())))
    with caplog.at_level(logging.WARNING, logger="signalvault.policies"):
        async with running_gateway(configured) as (app, client, key):
            assert (await ask(client, key, f"the {CODENAME} file")).status_code == 200
            service = service_of(app)
            assert service.active().version == 1
            [proposal] = [v for v in service.versions() if v.status == "proposed"]
            assert (proposal.created_by, proposal.source) == ("config", "config")
    assert "proposed for review" in caplog.text
    async with running_gateway(configured) as (app, client, key):  # no second proposal
        service = service_of(app)
        assert [v.status for v in service.versions()] == ["active", "proposed"]
        service.approve(proposal.version, BOB)
        assert (await ask(client, key, f"the {CODENAME} file")).status_code == 400
    # Without rules in the config, the approved policy stays in force (not the default).
    async with running_gateway(base) as (app, client, key):
        assert (await ask(client, key, f"the {CODENAME} file")).status_code == 400


async def test_diff_lists_rule_changes_and_a_unified_text_diff(gateway):
    service = service_of(gateway)
    rules = default_rules()
    rules[0] = {**rules[0], "action": "log"}  # secrets: block -> log
    del rules[3]  # prompt-injection removed
    rules.append(BLOCK_CODENAME)
    proposal = service.propose(rules, ALICE)
    diff = service.diff(proposal.version)
    changes = {c.name: (c.change, c.fields) for c in diff.changes}
    assert changes == {
        "secrets": ("changed", ("action",)),
        "no-codename": ("added", ()),
        "prompt-injection": ("removed", ()),
    }
    assert diff.text.startswith("--- version 1\n+++ version 2\n")
    assert '-    "action": "block",' in diff.text and '+    "action": "log",' in diff.text
    assert f'+        "{CODENAME}"' in diff.text


async def test_invalid_or_unchanged_proposals_are_refused(gateway):
    service = service_of(gateway)
    with pytest.raises(ConfigError, match="detector must be one of"):
        service.propose([{"detector": "nope", "action": "block"}], ALICE)
    bad_regex = {"detector": "custom", "action": "block", "options": {"patterns": ["("]}}
    with pytest.raises(ConfigError, match="do not compile"):
        service.propose([bad_regex], ALICE)
    with pytest.raises(ConfigError, match="already the active policy"):
        service.propose(default_rules(), ALICE)
    assert [v.version for v in service.versions()] == [1]


def test_cli_propose_show_list_and_refused_self_approval(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    env = {"SIGNALVAULT_DATA_DIR": str(tmp_path / "data"), "SIGNALVAULT_CONFIG": ""}

    def run(*args: str):
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    # A gateway started on this data directory once: the default policy is version 1.
    services = open_services(Settings(store=StoreSettings(data_dir=tmp_path / "data")))
    PolicyService(services.store, services.trail, review=True).sync_config(())
    services.sealer.close()
    services.store.close()
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(
        '[[rules]]\nname = "secrets"\ndetector = "secrets"\naction = "block"\n'
        '[[rules]]\nname = "no-codename"\ndetector = "custom"\naction = "block"\n'
        f'[rules.options]\nkeywords = ["{CODENAME}"]\n'
    )
    proposed = run("policies", "propose", "--file", str(rules_file), "--reason", "SEC-9")
    assert proposed.exit_code == 0, proposed.output
    assert "Policy version 2 is proposed (base 1)" in proposed.output
    shown = run("policies", "show", "2", "--diff")
    assert "added no-codename" in shown.output and "removed pii-input" in shown.output
    own = run("policies", "approve", "2")
    assert own.exit_code == 1 and "different account" in own.output
    listed = [orjson.loads(line) for line in run("policies", "list", "--json").output.splitlines()]
    assert [(v["version"], v["status"]) for v in listed] == [(1, "active"), (2, "proposed")]
    assert listed[1]["reason"] == "SEC-9" and listed[1]["proposed_by"].startswith("cli:")
    assert run("policies", "reject", "2", "--reason", "no").exit_code == 0
    assert "rejected" in run("policies", "list").output
    rollback = run("policies", "rollback", "1")
    assert rollback.exit_code == 1 and "already the active policy" in rollback.output


async def test_postgres_replicas_apply_an_approval_without_restart(tmp_path, mock_provider, pg_url):
    import time

    from signalvault.config import Secret

    settings = make_settings(tmp_path, mock_provider[1], database_url=Secret(pg_url))
    async with (
        running_gateway(settings) as (first, first_client, key),
        running_gateway(settings) as (_, second_client, _),
    ):
        service = service_of(first)
        proposal = service.propose(with_codename_rule(), ALICE)
        for c in (first_client, second_client):
            assert (await ask(c, key, f"the {CODENAME} file")).status_code == 200
        service.approve(proposal.version, BOB)
        assert (await ask(first_client, key, f"the {CODENAME} file")).status_code == 400
        deadline = time.monotonic() + 5  # the other replica: as soon as the notice arrives
        while time.monotonic() < deadline:
            response = await ask(second_client, key, f"the {CODENAME} file")
            if response.status_code != 200:
                break
        assert response.status_code == 400


def test_postgres_concurrent_approvals_leave_one_active_version(pg_url):
    import threading

    from sqlalchemy.engine import make_url

    from signalvault.audit import AuditTrail
    from signalvault.crypto import MasterKey, MasterKeyRing
    from signalvault.store.postgres import PostgresStore

    stores = [
        PostgresStore(make_url(pg_url).set(drivername="postgresql+psycopg")) for _ in range(2)
    ]
    for store in stores:
        store.open()
    try:
        key = MasterKeyRing((MasterKey.from_bytes(os.urandom(32)),))
        services = [PolicyService(s, AuditTrail(s, key), review=True) for s in stores]
        services[0].sync_config(())
        first = services[0].propose(with_codename_rule(), ALICE)
        second = services[0].propose(default_rules()[:2], ALICE)
        outcomes: list[str] = []
        gate = threading.Barrier(2)

        def approve(service: PolicyService, version: int) -> None:
            gate.wait()
            try:
                service.approve(version, BOB)
                outcomes.append("approved")
            except PolicyConflict:
                outcomes.append("conflict")

        threads = [
            threading.Thread(target=approve, args=(services[0], first.version)),
            threading.Thread(target=approve, args=(services[1], second.version)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["approved", "conflict"]
        assert [v.status for v in services[1].versions()].count("active") == 1
    finally:
        for store in stores:
            store.close()


def test_a_first_policy_that_does_not_compile_is_never_stored(tmp_path):
    services = open_services(Settings(store=StoreSettings(data_dir=tmp_path / "data")))
    try:
        service = PolicyService(services.store, services.trail, review=True)
        bad = {"detector": "custom", "action": "block", "options": {"patterns": ["("]}}
        with pytest.raises(ConfigError, match="do not compile"):
            service.sync_config([bad])
        assert service.versions() == []
        assert service.sync_config(()).source == "default"  # a corrected start still works
    finally:
        services.sealer.close()
        services.store.close()
