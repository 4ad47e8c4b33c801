"""Settings (issue 4): GET /api/settings shows the effective configuration with secrets masked
and each value's source; PATCH /api/settings changes the run-time allow-list, checked whole
before anything applies, audited with before/after, and taken up by running gateways (this one
and another on the same store) without a restart; the `settings` CLI does the same."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from signalvault.cli.main import cli
from signalvault.config import AlertSettings, ProviderSettings, Secret, Settings, load_settings
from signalvault.control.accounts.service import AccountService
from signalvault.control.effective_settings import describe
from signalvault.control.runtime_settings import RuntimeSettings, change_settings, load_overrides
from signalvault.control.services import open_services
from signalvault.control.settings_allowlist import RUNTIME
from signalvault.errors import AuthError, BadRequest, RateLimited
from tests.conftest import make_settings, running_gateway
from tests.control.test_accounts import FAST, FakeClock
from tests.control.test_admin_api import World, person, world_for
from tests.store.test_postgres import open_pg
from tests.trail.test_alerts import AWS_KEY, Webhook

pytestmark = pytest.mark.anyio

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
# Secret values set through the config file and the environment: none may ever be answered.
FILE_PROVIDER_KEY = "sk-file-provider-7c1d0e55aa"
ENV_PROVIDER_KEY = "sk-env-provider-93be21f4c0"
SIGNING_SECRET = "signing-secret-4f0a9d"
METRICS_TOKEN = "metrics-token-b81c2e"
MASTER_KEY = "ab" * 32
WEBHOOK_TOKEN = "hook-token-55e0c1"
REDIS_PASSWORD = "redis-pw-0c9d1a"
SECRETS = (
    FILE_PROVIDER_KEY,
    ENV_PROVIDER_KEY,
    SIGNING_SECRET,
    METRICS_TOKEN,
    MASTER_KEY,
    WEBHOOK_TOKEN,
    REDIS_PASSWORD,
)


def write_config(tmp_path: Path, base_url: str) -> Path:
    config = tmp_path / "signalvault.toml"
    config.write_text(
        f"""
[store]
data_dir = "{tmp_path / "data"}"

[server]
metrics_token = "{METRICS_TOKEN}"

[limits]
user_rpm = 100

[alerts]
signing_secret = "{SIGNING_SECRET}"

[[providers]]
name = "openai"
kind = "openai"
base_url = "{base_url}"
models = ["gpt-*"]
api_key = "{FILE_PROVIDER_KEY}"

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "{base_url}"
models = ["claude-*"]
api_key_env = "TEST_ANTHROPIC_KEY"

[[routes]]
model = "gpt-4o-mini"
targets = ["openai"]
"""
    )
    return config


ENVIRON = {
    "SIGNALVAULT_MASTER_KEY": MASTER_KEY,
    "SIGNALVAULT_ALERTS_WEBHOOK_URL": f"https://hooks.example.test/services/{WEBHOOK_TOKEN}",
    "SIGNALVAULT_REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0",
    "SIGNALVAULT_LIMITS_USER_TPM": "5000",
    "TEST_ANTHROPIC_KEY": ENV_PROVIDER_KEY,
}


@pytest.fixture
async def world(settings, mock) -> AsyncIterator[World]:
    async with world_for(settings) as found:
        yield found


def by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in body["data"]}


def settings_events(world: World) -> list[dict[str, Any]]:
    return [{"actor": r["actor"], **orjson.loads(r["details"])} for r in world.records("settings")]


async def patch(world: World, body: dict[str, Any], role: str = "admin") -> Any:
    headers = world.token(person(role, "global"))
    return await world.client.patch("/api/settings", json=body, headers=headers)


async def read(world: World, role: str = "auditor") -> dict[str, dict[str, Any]]:
    response = await world.client.get("/api/settings", headers=world.token(person(role, "global")))
    assert response.status_code == 200, response.text
    return by_name(response.json())


# -- GET: the effective configuration -----------------------------------------------------------


async def test_settings_are_shown_with_sources_and_no_secret_ever_answered(tmp_path, mock_provider):
    config = load_settings(write_config(tmp_path, mock_provider[1]), environ=ENVIRON)
    async with world_for(config) as world:
        response = await world.client.get(
            "/api/settings", headers=world.token(person("security", "global"))
        )
        assert response.status_code == 200
        for secret in SECRETS:
            assert secret not in response.text
        shown = by_name(response.json())
    assert shown["server.host"] == {
        "name": "server.host",
        "value": "127.0.0.1",
        "is_secret": False,
        "is_set": True,
        "source": "default",
        "is_runtime": False,
        "config_value": None,
        "updated_at": None,
        "updated_by": None,
    }
    assert shown["limits.user_rpm"]["value"] == 100
    assert shown["limits.user_rpm"]["source"] == "file"
    assert shown["limits.user_rpm"]["is_runtime"] is True
    assert shown["limits.user_tpm"]["value"] == 5000
    assert shown["limits.user_tpm"]["source"] == "env"
    for name, source in (
        ("crypto.master_key", "env"),
        ("alerts.webhook_url", "env"),
        ("limits.redis_url", "env"),
        ("alerts.signing_secret", "file"),
        ("server.metrics_token", "file"),
        ("providers.openai.api_key", "file"),
        ("providers.anthropic.api_key", "env"),
    ):
        assert shown[name]["is_secret"] and shown[name]["is_set"], name
        assert shown[name]["value"] is None and shown[name]["source"] == source, name
    assert shown["store.database_url"]["is_set"] is False
    assert shown["store.database_url"]["source"] == "default"
    assert shown["providers.openai.base_url"]["value"] == mock_provider[1]
    assert shown["providers.anthropic.api_key_env"]["value"] == "TEST_ANTHROPIC_KEY"
    assert shown["routes.0.targets"]["value"] == ["openai"]
    assert shown["guardrails.two_person_review"]["is_runtime"] is False
    assert {n for n, e in shown.items() if e["is_runtime"]} == set(RUNTIME)


def test_urls_that_may_carry_a_credential_are_not_shown_with_it():
    settings = Settings(
        providers=(
            ProviderSettings(name="local", base_url=f"http://me:{REDIS_PASSWORD}@llm:8000/v1"),
        )
    )
    hooked = replace(
        settings,
        audit=replace(settings.audit, checkpoint_webhook=f"https://e.test/?t={WEBHOOK_TOKEN}"),
    )
    shown = {e["name"]: e for e in describe(hooked, {})}
    webhook = shown["audit.checkpoint_webhook"]
    assert webhook["is_secret"] and webhook["is_set"] and webhook["value"] is None
    assert shown["providers.local.base_url"]["value"] == "http://****@llm:8000/v1"
    text = orjson.dumps(list(shown.values())).decode()
    assert WEBHOOK_TOKEN not in text and REDIS_PASSWORD not in text


# -- PATCH: validation, audit, reset -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "named", "code"),
    [
        ({"limits.user_rpm": 5, "server.port": 9000}, "server.port", "not_runtime_setting"),
        ({"limits.user_rpm": 5, "nope.nothing": 1}, "nope.nothing", "not_runtime_setting"),
        ({"guardrails.two_person_review": False}, "config file", "not_runtime_setting"),
        ({"limits.user_rpm": 5, "limits.user_tpm": -1}, "limits.user_tpm", "invalid_setting"),
        ({"limits.user_rpm": "5"}, "limits.user_rpm", "invalid_setting"),
        ({"limits.user_rpm": True}, "limits.user_rpm", "invalid_setting"),
        ({"limits.user_rpm": 2.5}, "limits.user_rpm", "invalid_setting"),
        ({"accounts.session_idle_minutes": 0}, "session_idle_minutes", "invalid_setting"),
        ({"alerts.events": ["secrets_blocked", "nope"]}, "nope", "invalid_setting"),
        ({"alerts.events": "secrets_blocked"}, "alerts.events", "invalid_setting"),
        ({"retention.days": 36501}, "retention.days", "invalid_setting"),
        ({}, "no settings", "invalid_setting"),
    ],
)
async def test_a_bad_item_refuses_the_whole_change(world: World, body, named, code):
    response = await patch(world, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code
    assert named in response.json()["error"]["message"]
    assert load_overrides(world.services.store) == {}
    assert settings_events(world) == []
    assert (await read(world))["limits.user_rpm"]["source"] == "default"


async def test_a_change_is_audited_with_before_and_after_and_null_resets_it(world: World):
    response = await patch(
        world, {"limits.user_rpm": 7, "alerts.events": ["secrets_blocked", "secrets_blocked"]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["changes"] == [
        {"name": "limits.user_rpm", "before": 0, "after": 7, "is_reset": False},
        {
            "name": "alerts.events",
            "before": list(AlertSettings().events),
            "after": ["secrets_blocked"],
            "is_reset": False,
        },
    ]
    [event] = settings_events(world)
    assert event["actor"] == "account:admin@example.com"
    assert event["before"] == {"limits.user_rpm": 0, "alerts.events": list(AlertSettings().events)}
    assert event["after"] == {"limits.user_rpm": 7, "alerts.events": ["secrets_blocked"]}
    shown = await read(world)
    assert shown["limits.user_rpm"]["value"] == 7
    assert shown["limits.user_rpm"]["source"] == "runtime"
    assert shown["limits.user_rpm"]["config_value"] == 0
    assert shown["limits.user_rpm"]["updated_by"] == "account:admin@example.com"
    assert shown["limits.user_rpm"]["updated_at"].endswith("Z")

    response = await patch(world, {"limits.user_rpm": None}, role="owner")
    assert response.json()["changes"] == [
        {"name": "limits.user_rpm", "before": 7, "after": 0, "is_reset": True}
    ]
    [reset] = [e for e in settings_events(world) if e["actor"] == "account:owner@example.com"]
    assert reset["before"] == {"limits.user_rpm": 7} and reset["after"] == {"limits.user_rpm": 0}
    assert reset["reset"] == ["limits.user_rpm"]
    shown = await read(world)
    assert shown["limits.user_rpm"]["source"] == "default"
    assert shown["alerts.events"]["source"] == "runtime"


async def test_retention_days_is_one_value_for_settings_and_retention(world: World):
    owner = world.token(person("owner", "global"))
    assert (await patch(world, {"retention.days": 30})).status_code == 200
    retention = (await world.client.get("/api/retention", headers=owner)).json()
    assert retention["default_days"] == 30
    await world.client.put("/api/retention", json={"default_days": 10}, headers=owner)
    assert (await read(world))["retention.days"]["value"] == 10
    await world.client.put("/api/retention", json={"projects": {"alpha": 5}}, headers=owner)
    projects = (await read(world))["retention.projects"]
    assert projects["value"] == {"alpha": 5} and projects["source"] == "runtime"
    assert (await patch(world, {"retention.days": None})).status_code == 200
    retention = (await world.client.get("/api/retention", headers=owner)).json()
    assert retention["default_days"] == 0  # the configured default again


# -- running gateways take it up ---------------------------------------------------------------


async def send(client, key: str, user: str = "alice") -> int:
    headers = {"Authorization": f"Bearer {key}", "X-SignalVault-User": user}
    response = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
    return response.status_code


@pytest.fixture(params=["sqlite", "postgres"])
def shared_settings(request, tmp_path, mock_provider) -> Settings:
    """Settings of a store two gateways share: a SQLite file, or a PostgreSQL schema."""
    settings = make_settings(tmp_path, mock_provider[1])
    if request.param == "postgres":
        url = Secret(request.getfixturevalue("pg_url"))
        settings = replace(settings, store=replace(settings.store, database_url=url))
    return settings


async def test_a_lowered_user_limit_applies_at_once_in_every_gateway_on_the_store(
    shared_settings, mock
):
    """Through the admin API of one gateway; the other, on the same store, refuses the next
    request over the new limit without a restart (and lifts it once the override is reset)."""
    async with (
        world_for(shared_settings) as world,
        running_gateway(shared_settings) as (_, other, key),
    ):
        for _ in range(3):
            assert await send(other, key) == 200  # no per-user limit configured
        assert (await patch(world, {"limits.user_rpm": 2})).status_code == 200
        _, own_key = world.services.keyring.create(name="own", environment="dev")
        assert [await send(world.client, own_key, "bob") for _ in range(3)] == [200, 200, 429]
        deadline = time.monotonic() + 5  # PostgreSQL: until the notification arrives
        statuses: list[int] = []
        while time.monotonic() < deadline and 429 not in statuses:
            statuses.append(await send(other, key))
        assert statuses[-1] == 429
        if shared_settings.store.database_url is None:  # the signals file: no delay at all
            assert statuses == [200, 200, 429]
        assert (await patch(world, {"limits.user_rpm": None})).status_code == 200
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and await send(other, key) != 200:
            pass
        assert await send(other, key) == 200


def test_a_change_reaches_another_postgres_replica_by_notification(pg_url):
    """The other replica's backstop is an hour, so only the NOTIFY can carry the change."""
    first, second = open_pg(pg_url), open_pg(pg_url, backstop_seconds=3600)
    try:
        runtime = RuntimeSettings(second, Settings())
        assert runtime.limits().user_rpm == 0
        first.put_settings({"limits.user_rpm": "3"}, "test")
        deadline = time.monotonic() + 5
        while runtime.limits().user_rpm != 3 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert runtime.limits().user_rpm == 3
    finally:
        first.close()
        second.close()


async def test_alert_kinds_changed_at_run_time_decide_what_is_sent(tmp_path, mock_provider):
    webhook = Webhook()
    try:
        settings = make_settings(tmp_path, mock_provider[1])
        alerts = AlertSettings(webhook_url=Secret(webhook.url), events=("verification_failed",))
        async with running_gateway(replace(settings, alerts=alerts)) as (app, client, key):
            assert app.services is not None
            auth = {"Authorization": f"Bearer {key}"}
            blocked = {**CHAT, "messages": [{"role": "user", "content": f"key {AWS_KEY}"}]}
            await client.post("/v1/chat/completions", json=blocked, headers=auth)
            change_settings(
                app.services.store,
                app.services.trail,
                app.settings,
                {"alerts.events": ["secrets_blocked"]},
                "test",
            )
            await client.post("/v1/chat/completions", json=blocked, headers=auth)
            [alert] = webhook.wait_for(1)
            time.sleep(0.1)  # a first alert, had it been sent, would be here by now
        assert len(webhook.bodies) == 1 and alert["kind"] == "secrets_blocked"
    finally:
        webhook.server.shutdown()


def test_session_and_login_lock_settings_apply_to_a_running_account_service(tmp_path):
    services = open_services(Settings(store=replace(Settings().store, data_dir=tmp_path / "d")))
    clock = FakeClock()
    try:
        accounts = AccountService(
            services.store,
            services.trail,
            services.keyring.pepper,
            services.runtime.base.accounts,
            passwords=FAST,
            clock=clock,
            live=services.runtime.accounts,
        )
        accounts.create_account("a@example.com", {None: "owner"}, "test", "a-long-password-1")
        session = accounts.login("a@example.com", "a-long-password-1", None)

        def change(values: dict[str, Any]) -> None:
            change_settings(services.store, services.trail, services.runtime.base, values, "t")

        change({"accounts.session_max_hours": 1.0})  # shorter than at login: applies at once
        clock.advance(3601)
        with pytest.raises(AuthError, match="1 h after login"):
            accounts.authenticator.authenticate(None, session.secret, None)
        change({"accounts.session_max_hours": None, "accounts.session_idle_minutes": 2})
        session = accounts.login("a@example.com", "a-long-password-1", None)
        clock.advance(119)
        assert accounts.authenticator.authenticate(None, session.secret, None) is not None
        clock.advance(121)
        with pytest.raises(AuthError, match="2 minutes without use"):
            accounts.authenticator.authenticate(None, session.secret, None)

        change({"accounts.login_max_failures": 2, "accounts.login_lock_minutes": 1})
        for _ in range(2):
            with pytest.raises(AuthError):
                accounts.login("a@example.com", "wrong-password-xx", None)
        with pytest.raises(RateLimited, match="try again in 60 s"):
            accounts.login("a@example.com", "a-long-password-1", None)
    finally:
        services.sealer.close()
        services.store.close()


def test_the_effective_settings_are_reread_only_after_a_change(tmp_path):
    services = open_services(Settings(store=replace(Settings().store, data_dir=tmp_path / "d")))
    try:
        runtime = services.runtime
        first = runtime.current()
        assert runtime.current() is first  # nothing changed: no reload, the same object
        change_settings(services.store, services.trail, runtime.base, {"limits.user_tpm": 9}, "t")
        assert runtime.limits().user_tpm == 9
        # A stored value no check would let through is ignored: the configured value applies.
        services.store.put_setting("limits.user_tpm", '"lots"', "someone")
        assert runtime.limits().user_tpm == 0
    finally:
        services.sealer.close()
        services.store.close()


# -- the CLI -----------------------------------------------------------------------------------


def test_cli_sets_shows_and_unsets_a_runtime_setting(tmp_path, mock_provider):
    config = write_config(tmp_path, mock_provider[1])
    runner = CliRunner()
    env = {**ENVIRON}

    def run(*args: str) -> Any:
        return runner.invoke(cli, [*args, "--config", str(config)], env=env)

    done = run("settings", "set", "limits.user_rpm", "30")
    assert done.exit_code == 0, done.output
    assert "limits.user_rpm: 100 -> 30" in done.output
    done = run("settings", "set", "alerts.events", "secrets_blocked,pii_blocked")
    assert done.exit_code == 0, done.output

    shown = run("settings", "show", "--json")
    assert shown.exit_code == 0, shown.output
    for secret in SECRETS:
        assert secret not in shown.output
    entries = {e["name"]: e for e in map(orjson.loads, shown.output.splitlines())}
    assert entries["limits.user_rpm"]["value"] == 30
    assert entries["limits.user_rpm"]["source"] == "runtime"
    assert entries["limits.user_rpm"]["updated_by"].startswith("cli:")
    assert entries["alerts.events"]["value"] == ["secrets_blocked", "pii_blocked"]
    table = run("settings", "show")
    assert table.exit_code == 0 and "crypto.master_key" in table.output
    assert "(set)" in table.output and MASTER_KEY not in table.output

    done = run("settings", "unset", "limits.user_rpm")
    assert done.exit_code == 0, done.output
    assert "limits.user_rpm: 30 -> 100 (override removed" in done.output

    services = open_services(load_settings(config, environ=ENVIRON))
    try:
        rows = [
            r for r in services.store.list_records(_all(), limit=100) if r["kind"] == "settings"
        ]
        assert len(rows) == 3 and all(r["actor"].startswith("cli:") for r in rows)
        assert orjson.loads(rows[0]["details"])["after"] == {"limits.user_rpm": 100}
        assert "limits.user_rpm" not in load_overrides(services.store)
    finally:
        services.sealer.close()
        services.store.close()


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["set", "server.port", "9000"], "read at start only"),
        (["set", "guardrails.two_person_review", "false"], "config file"),
        (["set", "limits.user_rpm", "lots"], "limits.user_rpm: expected an integer"),
        (["set", "alerts.events", "nope"], "unknown kind"),
        (["unset", "nope.nothing"], "unknown setting"),
    ],
)
def test_cli_refuses_in_one_line(tmp_path, args, complaint):
    config = tmp_path / "signalvault.toml"
    config.write_text(f'[store]\ndata_dir = "{tmp_path / "data"}"\n')
    result = CliRunner().invoke(cli, ["settings", *args, "--config", str(config)])
    assert result.exit_code != 0
    assert complaint in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def _all() -> Any:
    from signalvault.store import RecordFilter

    return RecordFilter()


def test_runtime_names_reject_what_config_rejects():
    """Each allow-listed name is a real setting, and its range keeps config's own checks."""
    for name, spec in RUNTIME.items():
        section, field = name.split(".")
        assert hasattr(getattr(Settings(), section), field)
        with pytest.raises(ValueError):
            spec.check(None)
    with pytest.raises(BadRequest):
        change_settings(None, None, Settings(), {"accounts.login_max_failures": 0}, "t")  # type: ignore[arg-type]
