"""Retention: per-project and default days, legal holds, dry runs, archives, batches, the lease
among processes, and the scheduled run inside the gateway."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import replace
from types import MappingProxyType

import orjson
import pytest
from click.testing import CliRunner

from signalvault.cli.main import cli
from signalvault.config import RetentionSettings, load_settings
from signalvault.crypto.envelope import Cipher
from signalvault.errors import ConfigError
from signalvault.store import RecordFilter
from signalvault.store.sql import INSERT_RECORD
from signalvault.store.writer import WriteOp
from signalvault.trail.audit import Interaction
from signalvault.trail.legal_holds import add_hold, release_hold
from signalvault.trail.retention import (
    DAY,
    load_policy,
    run_retention,
    scheduled_run,
    set_default_days,
    set_project_days,
)
from tests.conftest import running_gateway

pytestmark = pytest.mark.anyio

POLICY = RetentionSettings(
    days=30, projects=MappingProxyType({"alpha": 7, "beta": 0}), batch_pause_ms=0
)


async def chat(client, key: str, text: str, user: str = "u1") -> str:
    response = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
        headers={"Authorization": f"Bearer {key}", "X-SignalVault-User": user},
    )
    assert response.status_code == 200
    return response.headers["x-signalvault-request-id"]


async def traffic(app, client, default_key: str) -> dict[str, list[str]]:
    """Two records in each of the projects default, alpha and beta; ids by project."""
    keyring = app.services.keyring
    _, alpha = keyring.create(name="a", environment="dev", project="alpha")
    _, beta = keyring.create(name="b", environment="dev", project="beta")
    ids: dict[str, list[str]] = {}
    for project, key in (("default", default_key), ("alpha", alpha), ("beta", beta)):
        ids[project] = [await chat(client, key, f"{project} {i}") for i in range(2)]
    app.services.store.flush()
    return ids


def is_tombstone(store, record_id: str) -> bool:
    row = store.get_record(record_id)
    return row["tombstoned_at"] is not None


async def test_only_interactions_and_sign_ins_expire_evidence_of_changes_stays(settings):
    """Retention deletes what it is for (interactions, sign-in records); records of how the
    deployment was changed stay, whatever their kind, including kinds added later."""
    async with running_gateway(settings) as (app, client, key):
        store, trail = app.services.store, app.services.trail
        interaction = await chat(client, key, "old words")
        sign_in = trail.record_event("login_failed", "anonymous", {"reason": "wrong_password"})
        kept = [
            trail.record_event(kind, "account:ops@example.com", {"n": 1}, project="default")
            for kind in ("admin", "password_reset", "password_changed", "a_kind_from_the_future")
        ]
        store.flush()
        everything = RetentionSettings(days=1, batch_pause_ms=0)
        run_retention(store, trail, everything, actor="t", now=time.time() + 2 * DAY)
        assert is_tombstone(store, interaction) and is_tombstone(store, sign_in)
        assert not any(is_tombstone(store, i) for i in kept)


async def test_each_project_keeps_records_for_its_own_days(settings):
    async with running_gateway(settings) as (app, client, key):
        store, trail = app.services.store, app.services.trail
        ids = await traffic(app, client, key)
        now = time.time()
        report = run_retention(store, trail, POLICY, actor="t", now=now + 10 * DAY)
        assert report.tombstoned == 2 and report.by_project == {"alpha": 2}
        assert all(is_tombstone(store, i) for i in ids["alpha"])
        assert not any(is_tombstone(store, i) for i in ids["default"] + ids["beta"])

        report = run_retention(store, trail, POLICY, actor="t", now=now + 40 * DAY)
        assert report.by_project == {"default": 2}
        assert not any(is_tombstone(store, i) for i in ids["beta"])  # 0 days: kept
        row = store.get_record(ids["default"][0])
        assert row["tombstone_reason"] == "retention" and row["prompt_ct"] is None
        assert row["end_user"] is None and row["project"] is None and row["kind"] == "interaction"
        # Each run is itself a record, which retention leaves alone.
        runs = [r for r in store.list_records(RecordFilter(), 100) if r["kind"] == "retention_run"]
        assert len(runs) == 2 and runs[0]["actor"] == "t"
        assert orjson.loads(runs[0]["details"])["by_project"] == {"default": 2}
        run_retention(store, trail, POLICY, actor="t", now=now + 400 * DAY)
        assert all(
            r["tombstoned_at"] is None
            for r in store.list_records(RecordFilter(), 100)
            if r["kind"] == "retention_run"
        )


async def test_legal_holds_keep_records_until_released(settings):
    async with running_gateway(settings) as (app, client, key):
        store, trail = app.services.store, app.services.trail
        ids = await traffic(app, client, key)
        later = time.time() + 40 * DAY
        hold = add_hold(store, trail, "project", "alpha", "litigation 12", "t")
        user_hold = add_hold(store, trail, "record", ids["default"][0], None, "t")
        report = run_retention(store, trail, POLICY, actor="t", now=later)
        assert report.tombstoned == 1 and report.held_back == 3
        assert not any(is_tombstone(store, i) for i in ids["alpha"] + ids["default"][:1])
        release_hold(store, trail, hold.id, "t")
        release_hold(store, trail, user_hold.id, "t")
        report = run_retention(store, trail, POLICY, actor="t", now=later)
        assert report.tombstoned == 3 and report.held_back == 0
        with pytest.raises(ConfigError):
            release_hold(store, trail, hold.id, "t")
        with pytest.raises(ConfigError):
            add_hold(store, trail, "planet", "x", None, "t")


async def test_dry_run_changes_nothing_and_says_what_it_would_do(settings):
    async with running_gateway(settings) as (app, client, key):
        store, trail = app.services.store, app.services.trail
        ids = await traffic(app, client, key)
        report = run_retention(
            store, trail, POLICY, actor="t", dry_run=True, now=time.time() + 40 * DAY
        )
        assert report.tombstoned == 4 and report.by_project == {"alpha": 2, "default": 2}
        assert report.summary().startswith("retention: would tombstone 4 record(s)")
        assert not any(is_tombstone(store, i) for group in ids.values() for i in group)
        event = store.get_record(report.record_id)
        assert orjson.loads(event["details"])["dry_run"] is True


async def test_archive_holds_encrypted_content_readable_while_keys_exist(settings, tmp_path):
    async with running_gateway(settings) as (app, client, key):
        store, trail = app.services.store, app.services.trail
        ids = await traffic(app, client, key)
        archive_dir = tmp_path / "archive"
        policy = replace(POLICY, batch_size=1)
        seen: list[tuple[int, int]] = []
        report = run_retention(
            store,
            trail,
            policy,
            actor="t",
            archive_dir=archive_dir,
            now=time.time() + 10 * DAY,
            progress=lambda done, total: seen.append((done, total)),
        )
        assert seen == [(1, 2), (2, 2)]  # one batch at a time
        [archive] = list(archive_dir.iterdir())
        assert archive.stat().st_mode & 0o777 == 0o600 and report.archive == str(archive)
        data = archive.read_bytes()
        assert b"alpha 0" not in data and b"alpha 1" not in data
        lines = [orjson.loads(line) for line in data.splitlines()]
        assert sorted(line["id"] for line in lines) == sorted(ids["alpha"])
        line = lines[0]
        key_id, wrapped, master_key_id = store.find_data_key("u1")
        assert line["data_key_id"] == key_id
        cipher = Cipher(trail.master_keys.unwrap(key_id, wrapped, master_key_id))
        prompt = cipher.decrypt(
            base64.b64decode(line["prompt_ct"]), (line["id"] + ":prompt").encode()
        )
        assert orjson.loads(prompt)["messages"][0]["content"].startswith("alpha ")


async def test_run_time_overrides_beat_the_config(settings):
    async with running_gateway(settings) as (app, client, key):
        store, trail = app.services.store, app.services.trail
        ids = await traffic(app, client, key)
        set_project_days(store, trail, "beta", 1, "admin")
        set_default_days(store, trail, 0, "admin")
        policy = load_policy(store, POLICY)
        assert policy.default_days == 0 and dict(policy.projects) == {"alpha": 7, "beta": 1}
        report = run_retention(store, trail, POLICY, actor="t", now=time.time() + 2 * DAY)
        assert report.by_project == {"beta": 2}
        assert not any(is_tombstone(store, i) for i in ids["default"])
        set_project_days(store, trail, "beta", None, "admin")
        assert dict(load_policy(store, POLICY).projects) == {"alpha": 7, "beta": 0}
        with pytest.raises(ConfigError):
            set_project_days(store, trail, "beta", -1, "admin")


async def test_one_process_at_a_time_holds_the_retention_lease(settings):
    async with running_gateway(settings) as (app, _client, _key):
        store, trail = app.services.store, app.services.trail
        assert store.acquire_lease("retention", "a", 60)
        assert not store.acquire_lease("retention", "b", 60)
        assert store.acquire_lease("retention", "a", 60)  # renewal
        assert scheduled_run(store, trail, POLICY, "b", lambda: False) is None
        store.release_lease("retention", "a")
        assert scheduled_run(store, trail, POLICY, "b", lambda: False) is not None
        inactive = RetentionSettings(days=0)
        assert scheduled_run(store, trail, inactive, "b", lambda: False) is None


async def test_serve_applies_retention_on_its_schedule(settings):
    retention = RetentionSettings(days=1, interval_seconds=0.05, batch_pause_ms=0)
    async with running_gateway(replace(settings, retention=retention)) as (app, _c, _k):
        store = app.services.store
        old = Interaction(api="chat", created_at=time.time() - 3 * DAY)
        await store.write_ahead([WriteOp(INSERT_RECORD, old.metadata())])

        def runs() -> list[dict]:
            found = store.list_records(RecordFilter(), 1000)
            return [r for r in found if r["kind"] == "retention_run"]

        def tombstoned() -> int:
            return sum(orjson.loads(r["details"])["tombstoned"] for r in runs())

        for _ in range(250):  # the run records itself just after its last batch
            if tombstoned():
                break
            await asyncio.sleep(0.02)
        assert store.get_record(old.id)["tombstone_reason"] == "retention"
        assert runs() and all(r["actor"] == "scheduler" for r in runs())
        assert tombstoned() == 1


def test_retention_cli_and_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "sv.toml"
    config.write_text(
        f'[store]\ndata_dir = "{tmp_path / "data"}"\n'
        "[retention]\ndays = 30\nprojects = {alpha = 7}\nbatch_size = 10\n"
    )
    settings = load_settings(config, environ={})
    assert dict(settings.retention.projects) == {"alpha": 7}
    env = load_settings(config, environ={"SIGNALVAULT_RETENTION_PROJECTS": '{"beta": 3}'})
    assert dict(env.retention.projects) == {"beta": 3}
    bad = tmp_path / "bad.toml"
    bad.write_text("[retention]\nprojects = {alpha = -1}\n")
    with pytest.raises(ConfigError):
        load_settings(bad, environ={})
    runner = CliRunner()
    result = runner.invoke(cli, ["retention", "run", "--dry-run", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("retention: would tombstone 0 record(s)")
    added = runner.invoke(
        cli, ["legal-hold", "add", "--scope", "key", "--value", "key_x", "--config", str(config)]
    )
    assert added.exit_code == 0
    listed = runner.invoke(cli, ["legal-hold", "list", "--json", "--config", str(config)])
    [hold] = [orjson.loads(line) for line in listed.output.splitlines()]
    assert hold["scope"] == "key" and hold["value"] == "key_x" and hold["status"] == "active"
    missing = runner.invoke(cli, ["legal-hold", "release", "hold_nope", "--config", str(config)])
    assert missing.exit_code == 1 and "no active legal hold" in missing.output
