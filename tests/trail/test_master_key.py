"""Master-key rotation: data keys and secrets are re-wrapped, records never re-encrypted; running
gateways keep serving across it; `--finish` retires the old key only when nothing needs it."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from click.testing import CliRunner

from signalvault.cli.main import cli
from signalvault.config import CryptoSettings, Secret
from signalvault.control.services import open_services
from signalvault.crypto.envelope import MasterKey, MasterKeyRing
from signalvault.errors import CryptoError
from signalvault.store import RecordFilter
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


def invoke(env: dict[str, str], *args: str):
    result = CliRunner().invoke(cli, list(args), env={"SIGNALVAULT_CONFIG": "", **env})
    assert "Traceback" not in result.output
    return result


def readable_contents(settings) -> dict[str, bytes]:
    """Every record's prompt, decrypted by a fresh process's services."""
    services = open_services(settings)
    try:
        rows = services.store.list_records(RecordFilter(), 1000)
        found = {}
        for row in rows:
            if row["kind"] == "interaction":
                prompt, _ = services.trail.decrypt(row)
                found[row["id"]] = prompt
        wrapped_by = services.store.count_wrapped_by()
    finally:
        services.store.close()
    return found | {"__wrapped_by__": repr(sorted(wrapped_by)).encode()}


async def test_rotation_with_the_key_file_while_a_gateway_serves(settings):
    data_dir = settings.store.data_dir
    env = {"SIGNALVAULT_DATA_DIR": str(data_dir)}
    async with running_gateway(settings) as (app, client, key):
        before = await chat(client, key, "ann", "before rotation")
        old_key = (data_dir / "master.key").read_text()

        rotated = invoke(env, "master-key", "rotate")
        assert rotated.exit_code == 0, rotated.output
        new_key = (data_dir / "master.key").read_text()
        previous = data_dir / "master.key.previous"
        assert new_key != old_key and previous.read_text() == old_key
        assert previous.stat().st_mode & 0o777 == 0o600
        assert invoke(env, "master-key", "rotate").exit_code == 1  # unfinished: refused

        # The gateway loaded the old key at start; it keeps serving old and new subjects.
        same_user = await chat(client, key, "ann", "cached data key")
        new_user = await chat(client, key, "ben", "new data key")
        app.services.store.flush()
        prompt, _ = app.services.trail.decrypt(app.services.store.get_record(before))
        assert prompt is not None
        # It noticed the new key file: the new subject's key is wrapped by the new master key.
        new_id = MasterKey.from_bytes(bytes.fromhex(new_key.strip())).key_id
        assert app.services.store.find_data_key("ben")[2] == new_id

        finished = invoke(env, "master-key", "rotate", "--finish")
        assert finished.exit_code == 0, finished.output
        assert not previous.exists()
        after = await chat(client, key, "cy", "after finish")
        app.services.store.flush()
        for output in (rotated.output, finished.output):
            assert old_key.strip() not in output and new_key.strip() not in output

    contents = readable_contents(settings)
    assert contents.pop("__wrapped_by__") == repr([new_id]).encode()
    assert set(contents) == {before, same_user, new_user, after}
    assert b"before rotation" in contents[before] and b"new data key" in contents[new_user]
    # The gateway key made before rotation still authenticates (the pepper was re-wrapped).
    async with running_gateway(settings) as (_app, client, _key):
        await chat(client, key, "ann", "after restart")


async def test_rotation_from_the_environment_rewraps_stragglers_on_finish(settings, tmp_path):
    old_hex, new_hex = os.urandom(32).hex(), os.urandom(32).hex()
    data_dir = settings.store.data_dir
    old_settings = replace(settings, crypto=CryptoSettings(master_key=Secret(old_hex)))
    async with running_gateway(old_settings) as (app, client, key):
        first = await chat(client, key, "dora", "old key")
        env = {"SIGNALVAULT_DATA_DIR": str(data_dir), "SIGNALVAULT_MASTER_KEY": old_hex}
        refused = invoke(env, "master-key", "rotate")
        assert refused.exit_code == 1 and "--new-key-file" in refused.output
        key_file = tmp_path / "new.key"
        key_file.write_text(new_hex + "\n")
        rotated = invoke(env, "master-key", "rotate", "--new-key-file", str(key_file))
        assert rotated.exit_code == 0, rotated.output
        # This gateway cannot see the new key: a new subject's key is wrapped by the old one.
        straggler = await chat(client, key, "eli", "straggler")
        app.services.store.flush()
        assert (
            app.services.store.find_data_key("eli")[2]
            != MasterKey.from_bytes(bytes.fromhex(new_hex)).key_id
        )
        switched = {
            "SIGNALVAULT_DATA_DIR": str(data_dir),
            "SIGNALVAULT_MASTER_KEY": new_hex,
            "SIGNALVAULT_CRYPTO_PREVIOUS_MASTER_KEY": old_hex,
        }
        finished = invoke(switched, "master-key", "rotate", "--finish")
        assert finished.exit_code == 0, finished.output
        assert "re-wrapped 1 key(s)" in finished.output
        assert "SIGNALVAULT_CRYPTO_PREVIOUS_MASTER_KEY" in finished.output
    new_only = replace(settings, crypto=CryptoSettings(master_key=Secret(new_hex)))
    contents = readable_contents(new_only)
    assert b"old key" in contents[first] and b"straggler" in contents[straggler]
    # The old key alone no longer opens the store.
    stale = invoke(
        {"SIGNALVAULT_DATA_DIR": str(data_dir), "SIGNALVAULT_MASTER_KEY": old_hex}, "logs"
    )
    assert stale.exit_code == 1 and "master key does not match" in stale.output


async def test_keys_under_a_master_key_nobody_holds_are_reported_not_dropped(settings):
    data_dir = settings.store.data_dir
    env = {"SIGNALVAULT_DATA_DIR": str(data_dir)}
    async with running_gateway(settings) as (_app, client, key):
        await chat(client, key, "fay", "hello")
    assert invoke(env, "master-key", "rotate").exit_code == 0
    # A key wrapped by a master key nobody holds is reported, never silently dropped.
    services = open_services(settings)
    try:
        stray = MasterKey.from_bytes(os.urandom(32))
        store = services.store
        from signalvault.store.sql import INSERT_DATA_KEY
        from signalvault.store.writer import WriteOp

        await store.write_ahead(
            [
                WriteOp(
                    INSERT_DATA_KEY,
                    {
                        "id": "dk_stray",
                        "subject": "x",
                        "wrapped": stray.wrap("dk_stray", os.urandom(32)),
                        "master_key_id": stray.key_id,
                        "created_at": 0.0,
                        "destroyed_at": None,
                    },
                )
            ]
        )
    finally:
        services.store.close()
    finished = invoke(env, "master-key", "rotate", "--finish")
    assert finished.exit_code == 0
    assert f"1 key(s) wrapped by master key {stray.key_id}" in finished.output
    services = open_services(settings)
    try:
        assert services.store.count_wrapped_by()[stray.key_id] == 1
    finally:
        services.store.close()


def test_key_ring_unwraps_by_master_key_id_and_reloads_on_change():
    old, new = MasterKey.from_bytes(os.urandom(32)), MasterKey.from_bytes(os.urandom(32))
    pending: list[tuple[MasterKey, ...]] = []
    ring = MasterKeyRing((old,), watch=lambda: pending.pop() if pending else None)
    by_old = old.wrap("dk_1", b"k" * 32)
    assert ring.unwrap("dk_1", by_old, old.key_id) == b"k" * 32
    by_new = new.wrap("dk_2", b"n" * 32)
    with pytest.raises(CryptoError, match="does not match"):
        ring.unwrap("dk_2", by_new, new.key_id)
    pending.append((new, old))  # the source changed: a rotation elsewhere
    assert ring.unwrap("dk_2", by_new, new.key_id) == b"n" * 32  # reloaded once, then found
    assert ring.key_id == new.key_id and ring.holds(old.key_id)
    assert ring.unwrap("dk_1", by_old) == b"k" * 32  # no id: each held key in turn
    assert new.unwrap("dk_2", ring.wrap("dk_2", b"x" * 32)) == b"x" * 32
    with pytest.raises(CryptoError):
        ring.unwrap("dk_1", by_old, new.key_id)  # the id decides; a wrong one fails
