"""Data-subject erasure: the subject's keys and records go, down to the bytes of the database
files; everyone else's stay readable; legal holds refuse it; the receipt names no one."""

from __future__ import annotations

import os

import orjson
import pytest
from click.testing import CliRunner

from signalvault.cli.main import cli
from signalvault.errors import CryptoError, HeldError
from signalvault.store import RecordFilter
from signalvault.trail.erasure import erase_subject, subject_hash
from signalvault.trail.legal_holds import add_hold, release_hold
from tests.conftest import running_gateway

pytestmark = pytest.mark.anyio


async def chat(client, key: str, user: str, text: str) -> str:
    response = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
        headers={"Authorization": f"Bearer {key}", "X-SignalVault-User": user},
    )
    assert response.status_code == 200
    return response.headers["x-signalvault-request-id"]


def data_dir_bytes(data_dir) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in data_dir.iterdir() if path.is_file()}


def cli_env(settings) -> dict[str, str]:
    return {"SIGNALVAULT_DATA_DIR": str(settings.store.data_dir), "SIGNALVAULT_CONFIG": ""}


async def test_erased_subject_leaves_no_bytes_in_the_data_directory(settings):
    user = "subject-" + os.urandom(6).hex()
    canary = "canary-" + os.urandom(8).hex()
    async with running_gateway(settings) as (app, client, key):
        services = app.services
        for i in range(3):
            await chat(client, key, user, f"{canary} number {i}")
        other_id = await chat(client, key, "someone-else", "keep me")
        services.store.flush()
        assert services.store.reclaim_space()  # as in a long-running store: all in the db file
        key_id, wrapped, master_key_id = services.store.find_data_key(user)
        raw = services.trail.master_keys.unwrap(key_id, wrapped, master_key_id)
        before = data_dir_bytes(settings.store.data_dir)
        assert any(user.encode() in blob for blob in before.values())  # the scan can see it
        assert any(wrapped in blob for blob in before.values())

        receipt = erase_subject(services.store, services.trail, user, "test")

        assert (receipt.records, receipt.keys, receipt.is_space_reclaimed) == (3, 1, True)
        files = data_dir_bytes(settings.store.data_dir)
        assert {"signalvault.db", "signalvault.db-wal", "signalvault.db-shm"} <= set(files)
        for name, blob in files.items():
            for needle in (canary.encode(), raw, wrapped, user.encode()):
                assert needle not in blob, name
        # Other subjects' records still decrypt, in the running gateway.
        prompt, _ = services.trail.decrypt(services.store.get_record(other_id))
        assert b"keep me" in prompt
        # The same user may come back: a new data key, readable.
        again = await chat(client, key, user, "after erasure")
        services.store.flush()
        new_record = services.store.get_record(again)
        assert new_record["data_key_id"] != key_id
        assert b"after erasure" in services.trail.decrypt(new_record)[0]
    result = CliRunner().invoke(cli, ["logs", "--json"], env=cli_env(settings))
    assert result.exit_code == 0
    lines = [orjson.loads(line) for line in result.output.splitlines()]
    assert [r["id"] for r in lines if r["end_user"] == user] == [again]  # only the new one
    assert sum(r["outcome"] == "tombstoned" for r in lines) == 3


async def test_tombstones_keep_only_what_the_tree_needs(settings):
    async with running_gateway(settings) as (app, client, key):
        services = app.services
        record_id = await chat(client, key, "alice", "hello")
        services.store.flush()
        copy = services.store.get_record(record_id)  # as a backup of the row would hold it
        receipt = erase_subject(services.store, services.trail, "alice", "cli:test")
        with pytest.raises(CryptoError, match="erased"):
            services.trail.decrypt(copy)
        row = services.store.get_record(record_id)
        assert row["tombstone_reason"] == "erasure" and row["tombstoned_at"] is not None
        assert row["kind"] == "interaction" and row["created_at"] > 0
        kept = {"id", "kind", "created_at", "seq", "leaf_hash", "tombstoned_at", "tombstone_reason"}
        for name, value in row.items():
            if name not in kept:
                assert value in (None, False, "tombstoned"), name
        data_key_id = row["data_key_id"]
        assert data_key_id is None  # the tombstone no longer points at a key
        erased_key = services.store.find_data_key("alice")
        assert erased_key is None
        # The receipt: who, how many, and the subject only as a keyed hash.
        event = services.store.get_record(receipt.record_id)
        details = orjson.loads(event["details"])
        assert event["kind"] == "erasure" and event["actor"] == "cli:test"
        assert details == {"subject_hash": receipt.subject_hash, "records": 1, "data_keys": 1}
        assert event["end_user"] is None and b"alice" not in event["details"].encode()
        assert subject_hash(services.store, services.trail.master_keys, "alice") == (
            receipt.subject_hash
        )


async def test_legal_hold_refuses_erasure_and_changes_nothing(settings):
    async with running_gateway(settings) as (app, client, key):
        services = app.services
        record_id = await chat(client, key, "bob", "hello")
        services.store.flush()
        hold = add_hold(services.store, services.trail, "record", record_id, "case 7", "t")
        with pytest.raises(HeldError, match=hold.id):
            erase_subject(services.store, services.trail, "bob", "t")
        assert services.store.get_record(record_id)["prompt_ct"] is not None
        assert services.store.find_data_key("bob") is not None
        release_hold(services.store, services.trail, hold.id, "t")
        assert erase_subject(services.store, services.trail, "bob", "t").records == 1


async def test_cli_erase_refuses_under_user_hold_with_one_line_error(settings):
    env = cli_env(settings)
    runner = CliRunner()
    async with running_gateway(settings) as (app, client, key):
        await chat(client, key, "carol", "hi")
        app.services.store.flush()
    added = runner.invoke(
        cli, ["legal-hold", "add", "--scope", "user", "--value", "carol"], env=env
    )
    assert added.exit_code == 0
    refused = runner.invoke(cli, ["subject", "erase", "--user", "carol", "--yes"], env=env)
    assert refused.exit_code == 1
    assert refused.output.strip().startswith("Error: cannot erase: legal hold")
    assert "Traceback" not in refused.output
    asked = runner.invoke(cli, ["subject", "erase", "--user", "carol"], env=env, input="n\n")
    assert asked.exit_code == 1 and "Aborted" in asked.output
    hold_id = added.output.split()[3]
    assert runner.invoke(cli, ["legal-hold", "release", hold_id], env=env).exit_code == 0
    erased = runner.invoke(cli, ["subject", "erase", "--user", "carol", "--yes"], env=env)
    assert erased.exit_code == 0, erased.output
    # The interaction, and the hold's two events (they name the user in `end_user`).
    assert "3 record(s) tombstoned, 1 data key(s) destroyed" in erased.output
    assert "carol" not in erased.output
    # The released hold no longer names the user in clear either.
    listed = runner.invoke(cli, ["legal-hold", "list", "--all", "--json"], env=env)
    assert "carol" not in listed.output


async def test_erasure_from_another_process_reaches_the_gateways_key_cache(settings):
    """The gateway cached the subject's data key; after a CLI erasure it must not reuse it."""
    async with running_gateway(settings) as (app, client, key):
        services = app.services
        first = await chat(client, key, "dave", "one")
        services.store.flush()
        old_key = services.store.get_record(first)["data_key_id"]
        erased = CliRunner().invoke(
            cli, ["subject", "erase", "--user", "dave", "--yes"], env=cli_env(settings)
        )
        assert erased.exit_code == 0, erased.output
        second = await chat(client, key, "dave", "two")
        services.store.flush()
        row = services.store.get_record(second)
        assert row["data_key_id"] != old_key
        assert services.trail.decrypt(row)[0] is not None
        assert len(services.store.list_records(RecordFilter(end_user="dave"))) == 1
