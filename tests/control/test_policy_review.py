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

from signalvault.app import create_app
from signalvault.cli.main import cli
from signalvault.config import GuardrailSettings, Settings, StoreSettings
from signalvault.control.policies import PolicyConflict, PolicyService, SelfApproval
from signalvault.control.services import open_services
from signalvault.errors import ConfigError
from signalvault.guardrails.policy import DEFAULT_RULES
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


def events(app, *kinds: str, bootstrap: bool = False) -> list[dict]:
    """Records of these kinds, oldest first; the first version's activation only if asked."""
    app.services.store.flush()
    rows = app.services.store.list_records(RecordFilter(), limit=10_000)
    # By creation time: two ids made in the same millisecond (UUIDv7) may sort either way.
    found = sorted((row for row in rows if row["kind"] in kinds), key=lambda r: r["created_at"])
    if bootstrap:
        return found
    return [r for r in found if r["kind"] != "policy_activated" or not _is_bootstrap(r)]


def _is_bootstrap(row: dict) -> bool:
    return orjson.loads(row["details"])["how"] == "bootstrap"


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
        gateway,
        "policy_proposed",
        "policy_approved",
        "policy_rejected",
        "policy_activated",
        bootstrap=True,
    )
    assert [(e["kind"], e["actor"]) for e in trail] == [
        ("policy_activated", "default"),  # version 1, at the gateway's first start
        ("policy_proposed", ALICE),
        ("policy_approved", BOB),
        ("policy_activated", BOB),
        ("policy_proposed", ALICE),
        ("policy_rejected", BOB),
    ]
    first, proposed, approved, activated, _, rejected_event = (
        orjson.loads(e["details"]) for e in trail
    )
    assert first == {
        "version": 1,
        "digest": service.get(1).digest,
        "base_version": None,
        "proposed_by": "default",
        "approved_by": None,
        "how": "bootstrap",
        "source": "default",
        "review": True,
    }
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


async def test_the_first_policy_is_audited_with_what_put_it_in_force(tmp_path, mock_provider):
    """Version 1 (no review could precede it) leaves a `policy_activated` record naming its
    source, once: a later start on the same store adds none."""
    configured = replace(
        make_settings(tmp_path, mock_provider[1]),
        guardrails=GuardrailSettings(rules=tuple(with_codename_rule())),
    )
    for _ in range(2):
        async with running_gateway(configured) as (app, client, key):
            assert (await ask(client, key, f"the {CODENAME} file")).status_code == 400
            [first] = events(app, "policy_activated", bootstrap=True)
            digest = service_of(app).get(1).digest
    details = orjson.loads(first["details"])
    assert first["actor"] == "config"
    assert details == {
        "version": 1,
        "digest": digest,
        "base_version": None,
        "proposed_by": "config",
        "approved_by": None,
        "how": "bootstrap",
        "source": "config",
        "review": True,
    }


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


PASSWORD = "correct horse battery staple"


@pytest.fixture
def cli_run(tmp_path, monkeypatch):
    """A CLI runner on a data directory where a gateway started once (version 1 is the default
    policy), with accounts: alice (admin), bob and erin (security), carol (viewer), dave
    (security, still holding a one-time password)."""
    from signalvault.control.accounts.service import AccountService

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    env = {"SIGNALVAULT_DATA_DIR": str(tmp_path / "data"), "SIGNALVAULT_CONFIG": ""}
    services = open_services(Settings(store=StoreSettings(data_dir=tmp_path / "data")))
    try:
        PolicyService(services.store, services.trail, review=True).sync_config(())
        accounts = AccountService(
            services.store, services.trail, services.keyring.pepper, Settings().accounts
        )
        for name, role in [
            ("alice", "admin"),
            ("bob", "security"),
            ("erin", "security"),
            ("carol", "viewer"),
        ]:
            accounts.create_account(f"{name}@example.com", {None: role}, "test", PASSWORD)
        _, dave_password = accounts.create_account("dave@example.com", {None: "security"}, "test")
    finally:
        services.sealer.close()
        services.store.close()

    def run(*args: str, password: str | None = None, **extra_env: str):
        return runner.invoke(
            cli,
            list(args),
            env={**env, **extra_env},
            input=None if password is None else password + "\n",
            catch_exceptions=False,
        )

    run.dave_password = dave_password
    return run


def trail_of(tmp_path, *kinds: str) -> list[dict]:
    services = open_services(Settings(store=StoreSettings(data_dir=tmp_path / "data")))
    try:
        rows = services.store.list_records(RecordFilter(), limit=10_000)
    finally:
        services.sealer.close()
        services.store.close()
    return [
        {**row, "details": orjson.loads(row["details"])}
        for row in sorted(rows, key=lambda r: r["created_at"])
        if row["kind"] in kinds
    ]


def as_(name: str) -> tuple[str, ...]:
    """CLI options acting as <name>@example.com with the password on standard input."""
    return ("--as", f"{name}@example.com", "--password-stdin")


def test_cli_policy_changes_act_as_an_account_and_self_approval_is_refused(cli_run, tmp_path):
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(
        '[[rules]]\nname = "secrets"\ndetector = "secrets"\naction = "block"\n'
        '[[rules]]\nname = "no-codename"\ndetector = "custom"\naction = "block"\n'
        f'[rules.options]\nkeywords = ["{CODENAME}"]\n'
    )
    propose = ("policies", "propose", "--file", str(rules_file), "--reason", "SEC-9")
    # Review is on: the OS user alone is nobody.
    anonymous = cli_run(*propose)
    assert anonymous.exit_code == 1 and "--as EMAIL" in anonymous.output
    assert len(anonymous.output.strip().splitlines()) == 1
    # The roles come from the admin API's table: a viewer proposes nothing.
    viewer = cli_run(*propose, *as_("carol"), password=PASSWORD)
    assert viewer.exit_code == 1 and "does not allow policies.propose" in viewer.output
    proposed = cli_run(*propose, *as_("bob"), password=PASSWORD)
    assert proposed.exit_code == 0, proposed.output
    assert "Policy version 2 is proposed (base 1)" in proposed.output
    shown = cli_run("policies", "show", "2", "--diff")
    assert "added no-codename" in shown.output and "removed pii-input" in shown.output
    # The proposer's own account cannot approve; an admin may not approve at all.
    own = cli_run("policies", "approve", "2", *as_("bob"), password=PASSWORD)
    assert own.exit_code == 1 and "different account" in own.output
    admin = cli_run("policies", "approve", "2", *as_("alice"), password=PASSWORD)
    assert admin.exit_code == 1 and "does not allow policies.approve" in admin.output
    # A generated password must be changed (in the admin API) before the account acts.
    fresh = cli_run("policies", "approve", "2", *as_("dave"), password=cli_run.dave_password)
    assert fresh.exit_code == 1 and "one-time password" in fresh.output
    listed = [
        orjson.loads(line) for line in cli_run("policies", "list", "--json").output.splitlines()
    ]
    assert [(v["version"], v["status"]) for v in listed] == [(1, "active"), (2, "proposed")]
    assert listed[1]["reason"] == "SEC-9"
    assert listed[1]["proposed_by"] == "account:bob@example.com"
    # The password typed at the hidden prompt works too, and is never echoed.
    approved = cli_run("policies", "approve", "2", "--as", "erin@example.com", password=PASSWORD)
    assert approved.exit_code == 0, approved.output
    assert "Password for erin@example.com" in approved.output and PASSWORD not in approved.output
    assert "Policy version 2 is active." in approved.output
    [activated] = [
        e for e in trail_of(tmp_path, "policy_activated") if e["details"]["version"] == 2
    ]
    assert activated["actor"] == "account:erin@example.com"
    assert activated["details"]["proposed_by"] == "account:bob@example.com"
    logins = {(e["actor"], e["details"].get("via")) for e in trail_of(tmp_path, "login")}
    assert {("account:bob@example.com", "cli"), ("account:erin@example.com", "cli")} <= logins
    # A rollback through the CLI is a proposal like any other, named after its account.
    rollback = cli_run("policies", "rollback", "1", *as_("alice"), password=PASSWORD)
    assert rollback.exit_code == 0 and "is proposed" in rollback.output
    rejected = cli_run("policies", "reject", "3", "--reason", "no", *as_("bob"), password=PASSWORD)
    assert rejected.exit_code == 0, rejected.output
    assert "rejected" in cli_run("policies", "list").output
    without = cli_run("policies", "reject", "3", "--password-stdin", password=PASSWORD)
    assert without.exit_code == 2 and "--password-stdin needs --as" in without.output


def test_a_cli_proposal_before_any_gateway_ran_is_reviewed_against_the_first_policy(
    tmp_path, monkeypatch
):
    """On a store no gateway has opened yet, the policy the gateway will start with is put in
    force first: the proposal diffs against it and stays approvable after the first start."""
    from signalvault.control.accounts.service import AccountService

    monkeypatch.chdir(tmp_path)
    settings = Settings(store=StoreSettings(data_dir=tmp_path / "data"))
    services = open_services(settings)
    try:
        assert services.store.current_policy() is None
        accounts = AccountService(
            services.store, services.trail, services.keyring.pepper, Settings().accounts
        )
        for name in ("bob", "erin"):
            accounts.create_account(f"{name}@example.com", {None: "security"}, "test", PASSWORD)
    finally:
        services.sealer.close()
        services.store.close()
    env = {"SIGNALVAULT_DATA_DIR": str(tmp_path / "data"), "SIGNALVAULT_CONFIG": ""}
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text('[[rules]]\nname = "secrets"\ndetector = "secrets"\naction = "block"\n')
    runner = CliRunner()
    proposed = runner.invoke(
        cli,
        ["policies", "propose", "--file", str(rules_file), *as_("bob")],
        env=env,
        input=PASSWORD + "\n",
    )
    assert proposed.exit_code == 0, proposed.output
    assert "Policy version 2 is proposed (base 1)" in proposed.output
    services = open_services(settings)
    try:  # what a gateway's first start does: nothing more to put in force
        service = PolicyService(services.store, services.trail, review=True)
        assert service.sync_config(()).version == 1
        assert service.get(1).source == "default"
    finally:
        services.sealer.close()
        services.store.close()
    approved = runner.invoke(
        cli, ["policies", "approve", "2", *as_("erin")], env=env, input=PASSWORD + "\n"
    )
    assert approved.exit_code == 0, approved.output
    assert "Policy version 2 is active." in approved.output


def test_cli_approval_made_as_the_api_proposer_is_refused(cli_run, tmp_path):
    """Proposed through the admin API as an account, approved through the CLI as the same
    account: still one person."""
    services = open_services(Settings(store=StoreSettings(data_dir=tmp_path / "data")))
    try:
        service = PolicyService(services.store, services.trail, review=True)
        version = service.propose(with_codename_rule(), "account:bob@example.com").version
    finally:
        services.sealer.close()
        services.store.close()
    own = cli_run(
        "policies",
        "approve",
        str(version),
        "--as",
        "Bob@Example.com",
        "--password-stdin",
        password=PASSWORD,
    )
    assert own.exit_code == 1 and "different account" in own.output
    other = cli_run(
        "policies",
        "approve",
        str(version),
        "--as",
        "erin@example.com",
        "--password-stdin",
        password=PASSWORD,
    )
    assert other.exit_code == 0, other.output


def test_cli_as_with_a_wrong_password_fails_and_is_throttled(cli_run, tmp_path):
    args = ("policies", "rollback", "1", "--as", "bob@example.com", "--password-stdin")
    for _ in range(5):
        wrong = cli_run(*args, password="not-bobs-password")
        assert wrong.exit_code == 1
        assert wrong.output.strip() == "Error: invalid email or password"
    locked = cli_run(*args, password=PASSWORD)  # the right password, but locked now
    assert locked.exit_code == 1 and "too many failed logins" in locked.output
    failures = trail_of(tmp_path, "login_failed")
    assert len(failures) == 5
    assert {(f["details"]["reason"], f["details"]["via"]) for f in failures} == {
        ("wrong_password", "cli")
    }
    assert [e["details"]["key"] for e in trail_of(tmp_path, "login_locked")] == [
        "email:bob@example.com"
    ]
    assert "not-bobs-password" not in str(failures)


def test_cli_as_follows_run_time_login_lock_settings(cli_run, tmp_path):
    """A run-time override of the lock threshold (settings set) applies to CLI --as as it does
    to admin-API logins: one account service, whichever the channel."""
    assert cli_run("settings", "set", "accounts.login_max_failures", "2").exit_code == 0
    args = ("policies", "rollback", "1", "--as", "bob@example.com", "--password-stdin")
    for _ in range(2):
        assert cli_run(*args, password="not-bobs-password").exit_code == 1
    locked = cli_run(*args, password=PASSWORD)
    assert locked.exit_code == 1 and "too many failed logins" in locked.output


def test_cli_with_review_off_may_act_as_the_os_user(cli_run, tmp_path):
    off = {"SIGNALVAULT_GUARDRAILS_TWO_PERSON_REVIEW": "false"}
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(orjson.dumps(with_codename_rule()).decode())
    done = cli_run("policies", "propose", "--file", str(rules_file), **off)
    assert done.exit_code == 0 and "Policy version 2 is active" in done.output
    listed = [
        orjson.loads(line) for line in cli_run("policies", "list", "--json").output.splitlines()
    ]
    assert listed[1]["proposed_by"].startswith("cli:")
    # --as still names the account when given.
    back = cli_run(
        "policies",
        "rollback",
        "1",
        "--as",
        "alice@example.com",
        "--password-stdin",
        password=PASSWORD,
        **off,
    )
    assert back.exit_code == 0, back.output
    listed = [
        orjson.loads(line) for line in cli_run("policies", "list", "--json").output.splitlines()
    ]
    assert listed[2]["proposed_by"] == "account:alice@example.com"
    assert listed[2]["status"] == "active"


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

    from signalvault.crypto.envelope import MasterKey, MasterKeyRing
    from signalvault.store.postgres import PostgresStore
    from signalvault.trail.audit import AuditTrail

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
