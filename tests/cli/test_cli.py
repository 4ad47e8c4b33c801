"""The `signalvault` command through click's CliRunner, on a data directory in tmp_path."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from click.testing import CliRunner

from signalvault.cli.main import cli
from signalvault.config import Settings, StoreSettings
from signalvault.control.services import open_services
from signalvault.trail.audit import OK, REJECTED, Interaction


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def run(tmp_path, data_dir, monkeypatch):
    # No signalvault.toml from the developer's working directory may leak in.
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    env = {"SIGNALVAULT_DATA_DIR": str(data_dir), "SIGNALVAULT_CONFIG": ""}

    def invoke(*args: str):
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_keys_create_list_and_revoke(run):
    created = run("keys", "create", "--name", "ci", "--env", "prod", "--models", "gpt-*,o3*")
    assert created.exit_code == 0
    intro, secret = created.output.strip().splitlines()
    key_id = intro.split()[2]
    assert key_id.startswith("key_") and secret.startswith("sv-prod-")

    listed = run("keys", "list")
    assert listed.exit_code == 0 and key_id in listed.output
    assert secret not in listed.output and secret[:14] in listed.output
    assert "active" in listed.output and "gpt-*,o3*" in listed.output

    revoked = run("keys", "revoke", key_id)
    assert revoked.exit_code == 0 and f"Revoked {key_id} (ci)." in revoked.output
    assert "revoked" in run("keys", "list").output


def test_keys_json(run):
    created = run("keys", "create", "--name", "ci", "--env", "dev", "--json", "--rpm", "60")
    key = orjson.loads(created.output)
    assert key["secret"].startswith("sv-dev-") and key["rpm"] == 60 and key["status"] == "active"
    run("keys", "create", "--name", "other", "--env", "staging", "--expires", "30d")
    lines = run("keys", "list", "--json").output.strip().splitlines()
    rows = [orjson.loads(line) for line in lines]
    assert [r["name"] for r in rows] == ["ci", "other"]
    assert all("secret" not in r for r in rows)
    assert {"id", "name", "prefix", "environment"} <= set(rows[0])
    assert rows[1]["expires_at"] is not None
    only = run("keys", "list", "--json", "--prefix", "sv-staging-").output.strip().splitlines()
    assert [orjson.loads(line)["name"] for line in only] == ["other"]


def test_keys_list_when_empty(run):
    result = run("keys", "list")
    assert result.exit_code == 0 and result.output.strip() == "(none)"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("keys", "revoke", "key_nope"), "no key with id key_nope"),
        (("keys", "create", "--name", "x", "--env", "dev", "--expires", "soon"), "not a duration"),
        (("keys", "create", "--name", "x", "--env", "Prod"), "environment must be"),
        (("keys", "list", "--config", "absent.toml"), "config file not found"),
        (("logs", "--config", "absent.toml"), "config file not found"),
    ],
)
def test_bad_input_is_a_one_line_error(run, args, fragment):
    result = run(*args)
    assert_one_line_error(result, fragment)
    assert result.exit_code == 1


def test_malformed_expiry_creates_nothing(run, data_dir):
    run("keys", "create", "--name", "x", "--env", "dev", "--expires", "30x")
    assert not data_dir.exists()


def test_invalid_toml_is_a_one_line_error(run, tmp_path):
    (tmp_path / "bad.toml").write_text("[server\nport = 1\n")
    assert_one_line_error(run("keys", "list", "--config", str(tmp_path / "bad.toml")), "invalid")


def test_revoking_twice_is_an_error(run):
    key = orjson.loads(run("keys", "create", "--name", "x", "--env", "dev", "--json").output)
    run("keys", "revoke", key["id"])
    assert_one_line_error(run("keys", "revoke", key["id"]), "already revoked")


def test_wrong_master_key_is_a_one_line_error(run, tmp_path):
    run("keys", "list")  # creates the store, its pepper and a generated master key
    runner = CliRunner()
    env = {"SIGNALVAULT_DATA_DIR": str(tmp_path / "data"), "SIGNALVAULT_MASTER_KEY": "00" * 32}
    result = runner.invoke(cli, ["keys", "list"], env=env)
    assert_one_line_error(result, "master key does not match")


def test_click_usage_errors_exit_2(run):
    assert run("keys", "create", "--name", "x").exit_code == 2  # --env missing
    assert run("logs", "--limit", "0").exit_code == 2
    assert run("nonsense").exit_code == 2
    assert run("serve", "--port", "70000").exit_code == 2


def record_traffic(data_dir) -> list[str]:
    """Three records through AuditTrail, as the proxy writes them; returns their ids."""
    services = open_services(Settings(store=StoreSettings(data_dir=data_dir)))
    try:
        key, _ = services.keyring.create(name="app", environment="dev")
        ids = []
        for user, model, outcome in (
            ("alice", "gpt-4o-mini", OK),
            ("bob", "claude-x", OK),
            ("alice", "gpt-4o-mini", REJECTED),
        ):
            interaction = Interaction(api="chat", key=key, end_user=user, model_requested=model)
            if outcome == OK:
                asyncio.run(services.trail.begin(interaction, b'{"secret prompt": 1}'))
                interaction.outcome, interaction.status_code = OK, 200
                interaction.prompt_tokens, interaction.completion_tokens = 5, 7
                services.trail.complete(interaction, b'{"secret answer": 2}')
            else:
                interaction.outcome, interaction.status_code = REJECTED, 400
                asyncio.run(services.trail.record_rejected(interaction, None))
            ids.append(interaction.id)
        services.store.flush()
        return ids
    finally:
        services.store.close()


def test_logs_table_and_json(run, data_dir):
    ids = record_traffic(data_dir)
    table = run("logs")
    assert table.exit_code == 0
    header, *lines = table.output.strip().splitlines()
    assert header.split()[:3] == ["time", "id", "key_id"]
    assert len(lines) == 3 and ids[2] in lines[0]  # newest first
    assert "secret prompt" not in table.output

    records = [orjson.loads(line) for line in run("logs", "--json").output.splitlines()]
    assert [r["id"] for r in records] == ids[::-1]
    assert records[2]["total_tokens"] == 12 and records[2]["has_content"] is True
    assert all("prompt_ct" not in r and "response_ct" not in r for r in records)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--user", "alice"), [2, 0]),
        (("--model", "claude-x"), [1]),
        (("--outcome", "rejected"), [2]),
        (("--limit", "1"), [2]),
        (("--user", "nobody"), []),
    ],
)
def test_logs_filters(run, data_dir, args, expected):
    ids = record_traffic(data_dir)
    output = run("logs", "--json", *args).output
    assert [orjson.loads(line)["id"] for line in output.splitlines()] == [ids[i] for i in expected]


def test_logs_key_filter(run, data_dir):
    record_traffic(data_dir)
    key_id = orjson.loads(run("keys", "list", "--json").output)["id"]
    assert len(run("logs", "--json", "--key", key_id).output.splitlines()) == 3
    assert run("logs", "--key", "key_other").output.strip() == "(none)"


@pytest.fixture
def restore_logging():
    """`serve` configures the root logger before it checks anything; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_serve_without_providers_says_how_to_add_one(run, restore_logging):
    result = run("serve")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: no providers configured")
    assert "[[providers]]" in result.output and "signalvault demo" in result.output


def test_help_and_version(run):
    assert "serve" in run("--help").output and "keys" in run("-h").output
    assert run("--version").output.startswith("signalvault, version ")


def test_locked_store_is_a_one_line_error(tmp_path, data_dir):
    """Another process holds the SQLite write lock past the busy timeout."""
    import sqlite3

    runner = CliRunner()
    env = {"SIGNALVAULT_DATA_DIR": str(data_dir), "SIGNALVAULT_STORE_SQLITE_BUSY_TIMEOUT_MS": "50"}
    assert runner.invoke(cli, ["keys", "list"], env=env).exit_code == 0
    locker = sqlite3.connect(data_dir / "signalvault.db", isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        result = runner.invoke(cli, ["keys", "create", "--name", "x", "--env", "dev"], env=env)
    finally:
        locker.close()
    assert_one_line_error(result, "the store could not complete the operation")
    assert runner.invoke(cli, ["keys", "list"], env=env).output.strip() == "(none)"
