"""Gateway key rotation: a new secret for the same key, the old one valid for a grace period and
then refused as rotated; revocation ends both; every gateway process sees a rotation on its next
request; listings by prefix; the audit record; nothing secret stored or printed."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from signalvault.app import create_app
from signalvault.cli.main import cli
from signalvault.crypto.envelope import MasterKey
from signalvault.crypto.gateway_keys import display_prefix
from signalvault.errors import AuthError, ConfigError
from signalvault.gateway.keyring import KeyRing, load_pepper, rotate_key
from signalvault.store import RecordFilter
from signalvault.store.postgres import PostgresStore
from signalvault.store.sqlite import SqliteStore
from tests.conftest import records

MASTER = MasterKey.from_bytes(bytes(range(32)))


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path):
    store = SqliteStore(tmp_path / "signalvault.db")
    store.open()
    yield store
    store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keyring(store, clock) -> KeyRing:
    return KeyRing(store, load_pepper(store, MASTER), clock)


def refused(keyring: KeyRing, secret: str) -> AuthError:
    with pytest.raises(AuthError) as caught:
        keyring.authenticate(secret)
    assert caught.value.status_code == 401
    return caught.value


def test_both_secrets_work_during_grace_then_the_old_one_is_rotated(keyring, clock):
    key, old = keyring.create(name="ci", environment="prod", models=("gpt-*",), rpm=7, tpm=900)
    assert keyring.authenticate(old).id == key.id  # cached before the rotation

    rotated, new = keyring.rotate(key.id, grace_seconds=3600)
    assert new != old and new.startswith("sv-prod-")
    assert (rotated.id, rotated.name, rotated.project, rotated.environment) == (
        key.id,
        key.name,
        key.project,
        key.environment,
    )
    assert (rotated.models, rotated.rpm, rotated.tpm) == (("gpt-*",), 7, 900)
    assert rotated.prefix == display_prefix(new) and rotated.previous_prefix == display_prefix(old)
    assert rotated.grace_until == clock.now + 3600 and rotated.is_in_grace(clock.now)

    assert keyring.authenticate(old).id == key.id
    assert keyring.authenticate(new).id == key.id
    clock.now += 3599
    assert keyring.authenticate(old).id == key.id
    clock.now += 1
    error = refused(keyring, old)
    assert error.code == "rotated_api_key" and "rotated" in error.message
    assert keyring.authenticate(new).id == key.id


def test_a_grace_of_zero_ends_the_old_secret_at_once(keyring):
    key, old = keyring.create(name="ci", environment="dev")
    _, new = keyring.rotate(key.id, grace_seconds=0)
    assert refused(keyring, old).code == "rotated_api_key"
    assert keyring.authenticate(new).id == key.id


def test_rotating_twice_keeps_each_old_secret_on_its_own_grace(keyring, clock):
    key, first = keyring.create(name="ci", environment="dev")
    _, second = keyring.rotate(key.id, grace_seconds=100)
    clock.now += 50
    _, third = keyring.rotate(key.id, grace_seconds=1000)
    for secret in (first, second, third):
        assert keyring.authenticate(secret).id == key.id
    clock.now += 50  # the first secret's grace is over, the second's is not
    assert refused(keyring, first).code == "rotated_api_key"
    assert keyring.authenticate(second).id == key.id
    clock.now += 1000
    assert refused(keyring, second).code == "rotated_api_key"
    assert keyring.authenticate(third).id == key.id


def test_revoking_a_rotated_key_refuses_both_secrets(keyring, store):
    key, old = keyring.create(name="ci", environment="dev")
    _, new = keyring.rotate(key.id, grace_seconds=3600)
    keyring.authenticate(old), keyring.authenticate(new)  # both cached
    other = KeyRing(store, load_pepper(store, MASTER))  # another process
    other.revoke(key.id)
    assert refused(keyring, old).code == "revoked_api_key"
    assert refused(keyring, new).code == "revoked_api_key"


def test_unknown_secret_is_still_just_invalid(keyring):
    from signalvault.crypto.gateway_keys import generate_secret

    key, _ = keyring.create(name="ci", environment="dev")
    keyring.rotate(key.id, grace_seconds=0)
    assert refused(keyring, generate_secret("dev")).code == "invalid_api_key"


def test_rotation_is_refused_for_unknown_revoked_or_expired_keys(keyring, clock):
    with pytest.raises(ConfigError, match="no key with id key_nope"):
        keyring.rotate("key_nope")
    revoked, _ = keyring.create(name="a", environment="dev")
    keyring.revoke(revoked.id)
    with pytest.raises(ConfigError, match="revoked"):
        keyring.rotate(revoked.id)
    expiring, _ = keyring.create(name="b", environment="dev", expires_in=10)
    clock.now += 10
    with pytest.raises(ConfigError, match="expired"):
        keyring.rotate(expiring.id)
    live, _ = keyring.create(name="c", environment="dev")
    with pytest.raises(ConfigError, match="negative"):
        keyring.rotate(live.id, grace_seconds=-1)


def test_rotation_keeps_expiry_and_last_used(keyring, store, clock):
    key, _ = keyring.create(name="ci", environment="dev", expires_in=7200)
    rotated, new = keyring.rotate(key.id, grace_seconds=60)
    assert rotated.expires_at == key.expires_at
    keyring.authenticate(new)
    store.flush()
    assert store.get_key(key.id).last_used_at == clock.now


def test_list_by_prefix_finds_a_rotated_key_by_old_and_new_prefix(keyring, store):
    key, old = keyring.create(name="ci", environment="prod")
    keyring.create(name="other", environment="prod")
    _, new = keyring.rotate(key.id, grace_seconds=0)
    assert [k.id for k in store.list_keys(display_prefix(new))] == [key.id]
    assert [k.id for k in store.list_keys(display_prefix(old))] == [key.id]
    assert len(store.list_keys("sv-prod-")) == 2


def test_secrets_are_not_stored(keyring, store):
    key, old = keyring.create(name="ci", environment="dev")
    _, new = keyring.rotate(key.id, grace_seconds=60)
    store.flush()
    for file in store.path.parent.iterdir():
        data = file.read_bytes()
        assert old.encode() not in data and new.encode() not in data, file.name


def test_rotation_on_postgresql(pg_url):
    """The same queries on PostgreSQL (the one-round-trip lookup of current and old secrets)."""
    from sqlalchemy.engine import make_url

    url = make_url(pg_url).set(drivername="postgresql+psycopg")
    store, other = PostgresStore(url, pool_size=2), PostgresStore(url, pool_size=2)
    store.open()
    other.open()
    try:
        clock = Clock()
        keyring = KeyRing(store, load_pepper(store, MASTER), clock)
        remote = KeyRing(other, load_pepper(other, MASTER), clock)
        key, old = keyring.create(name="ci", environment="dev")
        assert remote.authenticate(old).id == key.id
        _, new = keyring.rotate(key.id, grace_seconds=0)
        import time

        deadline = time.monotonic() + 5
        while True:  # the other replica hears of it by NOTIFY within moments
            try:
                remote.authenticate(old)
            except AuthError as exc:
                assert exc.code == "rotated_api_key"
                break
            assert time.monotonic() < deadline, "the rotation never reached the other store"
            time.sleep(0.01)
        assert remote.authenticate(new).id == key.id
        assert [k.id for k in other.list_keys(display_prefix(old))] == [key.id]
    finally:
        store.close()
        other.close()


# -- through the gateway ---------------------------------------------------------------------


async def chat(client, key: str):
    return await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {key}"},
    )


@pytest.mark.anyio
async def test_a_rotation_reaches_every_gateway_on_its_next_request(settings):
    import httpx

    first, second = create_app(settings), create_app(settings)
    await first.startup()
    await second.startup()
    try:
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g")
            for app in (first, second)
        ]
        key, old = first.services.keyring.create(name="app", environment="dev")
        for client in clients:
            assert (await chat(client, old)).status_code == 200  # cached in both

        # Rotated through the second gateway with a grace period: both secrets work everywhere.
        _, new = rotate_key(
            second.services.keyring, second.services.trail, key.id, "test", grace_seconds=3600
        )
        for client in clients:
            assert (await chat(client, old)).status_code == 200
            assert (await chat(client, new)).status_code == 200

        # Rotated again with no grace: the replaced secret is refused at once by both.
        _, newest = rotate_key(
            second.services.keyring, second.services.trail, key.id, "test", grace_seconds=0
        )
        for client in clients:
            refused = await chat(client, new)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "rotated_api_key"
            assert (await chat(client, old)).status_code == 200  # still in its own grace
            assert (await chat(client, newest)).status_code == 200
        unauthorized = [r for r in records(first) if r["outcome"] == "unauthorized"]
        assert len(unauthorized) == 2 and all(
            r["error_code"] == "rotated_api_key" for r in unauthorized
        )
        for client in clients:
            await client.aclose()
    finally:
        await first.shutdown()
        await second.shutdown()


# -- the command line -------------------------------------------------------------------------


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    env = {"SIGNALVAULT_DATA_DIR": str(tmp_path / "data"), "SIGNALVAULT_CONFIG": ""}

    def invoke(*args: str):
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


def test_cli_rotate_prints_the_new_secret_once_and_lists_the_grace(run, tmp_path):
    created = orjson.loads(run("keys", "create", "--name", "ci", "--env", "prod", "--json").output)
    rotated = run("keys", "rotate", created["id"], "--grace", "2h", "--json")
    assert rotated.exit_code == 0, rotated.output
    body = orjson.loads(rotated.output)
    assert body["id"] == created["id"] and body["secret"] != created["secret"]
    assert body["previous_prefix"] == created["prefix"] and body["grace_until"] is not None

    [listed] = [orjson.loads(line) for line in run("keys", "list", "--json").output.splitlines()]
    assert listed["prefix"] == body["prefix"] and listed["grace_until"] == body["grace_until"]
    assert "secret" not in listed and listed["status"] == "active"
    assert "grace_until" in run("keys", "list").output
    old_prefix = run("keys", "list", "--json", "--prefix", created["prefix"]).output
    assert orjson.loads(old_prefix)["id"] == created["id"]

    table = run("keys", "rotate", created["id"], "--grace", "0")
    assert table.exit_code == 0 and "shown only now" in table.output
    newest = table.output.strip().splitlines()[-1]
    assert newest.startswith("sv-prod-") and newest != body["secret"]
    listed = orjson.loads(run("keys", "list", "--json").output)
    assert listed["grace_until"] is None  # the grace of 0 is already over

    # The trail records create and both rotations, never a secret.
    trail = run("logs", "--json").output
    assert created["secret"] not in trail and body["secret"] not in trail and newest not in trail
    db = b"".join(f.read_bytes() for f in (tmp_path / "data").iterdir() if f.is_file())
    for secret in (created["secret"], body["secret"], newest):
        assert secret.encode() not in db


def test_cli_rotate_errors_are_one_line(run):
    result = run("keys", "rotate", "key_nope")
    assert result.exit_code == 1 and "no key with id key_nope" in result.output
    created = orjson.loads(run("keys", "create", "--name", "x", "--env", "dev", "--json").output)
    result = run("keys", "rotate", created["id"], "--grace", "soon")
    assert result.exit_code == 1 and "not a duration" in result.output
    run("keys", "revoke", created["id"])
    result = run("keys", "rotate", created["id"])
    assert result.exit_code == 1 and "revoked" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_key_changes_are_audited(run, tmp_path):
    from signalvault.config import Settings, StoreSettings
    from signalvault.control.services import open_services

    created = orjson.loads(run("keys", "create", "--name", "ci", "--env", "dev", "--json").output)
    rotated = orjson.loads(run("keys", "rotate", created["id"], "--json").output)
    run("keys", "revoke", created["id"])
    services = open_services(Settings(store=StoreSettings(data_dir=tmp_path / "data")))
    try:
        rows = services.store.list_records(RecordFilter(), 100)
    finally:
        services.store.close()
    events = [orjson.loads(r["details"]) for r in reversed(rows) if r["kind"] == "gateway_key"]
    assert [e["action"] for e in events] == ["create", "rotate", "revoke"]
    assert events[1]["previous_prefix"] == created["prefix"]
    assert events[1]["prefix"] == rotated["prefix"] and events[1]["grace_until"] > 0
    assert all(r["actor"].startswith("cli:") for r in rows if r["kind"] == "gateway_key")
