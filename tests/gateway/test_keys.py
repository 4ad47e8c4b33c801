"""Gateway key secrets (format, checksum, hash) and the KeyRing over a real SQLite store."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from signalvault.crypto.envelope import MasterKey
from signalvault.crypto.gateway_keys import (
    BASE62,
    GatewayKey,
    display_prefix,
    generate_secret,
    hash_secret,
    is_well_formed,
    parse_duration,
)
from signalvault.errors import AuthError, ConfigError
from signalvault.gateway.keyring import KeyRing, load_pepper
from signalvault.store.sqlite import SqliteStore


def test_secret_format():
    secret = generate_secret("prod")
    assert secret.startswith("sv-prod-")
    assert len(secret) == len("sv-prod-") + 43 + 6
    assert all(ch in BASE62 for ch in secret[len("sv-prod-") :])
    assert is_well_formed(secret)
    assert generate_secret("prod") != secret


def test_any_single_character_change_breaks_the_checksum():
    secret = generate_secret("dev")
    for i in range(len("sv-dev-"), len(secret)):
        replacement = "A" if secret[i] != "A" else "B"
        assert not is_well_formed(secret[:i] + replacement + secret[i + 1 :]), i


@pytest.mark.parametrize(
    "text", ["", "sv-dev-short", "sk-dev-" + "A" * 49, "sv-DEV-" + "A" * 49, "sv-dev-" + "A" * 50]
)
def test_malformed_secrets_are_not_well_formed(text):
    assert not is_well_formed(text)


@pytest.mark.parametrize("environment", ["", "Prod", "dev-1", "a" * 17])
def test_bad_environment_names_are_refused(environment):
    with pytest.raises(ConfigError, match="environment must be"):
        generate_secret(environment)


def test_display_prefix_shows_environment_and_six_characters():
    secret = generate_secret("staging")
    assert display_prefix(secret) == secret[: len("sv-staging-") + 6]


def test_hash_depends_on_the_pepper():
    secret = generate_secret("dev")
    assert hash_secret(b"a" * 32, secret) == hash_secret(b"a" * 32, secret)
    assert hash_secret(b"a" * 32, secret) != hash_secret(b"b" * 32, secret)
    assert len(hash_secret(b"a" * 32, secret)) == 32


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45", 45), ("45s", 45), ("15m", 900), ("12h", 43200), ("30d", 2592000), ("1w", 604800)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-1d", "3y", "1d2h"])
def test_parse_duration_rejects_other_text(text):
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration(text)


def key(**overrides) -> GatewayKey:
    values = {
        "id": "key_1",
        "name": "n",
        "project": "p",
        "environment": "dev",
        "prefix": "sv-dev-abcdef",
        "models": (),
        "rpm": None,
        "tpm": None,
        "expires_at": None,
        "revoked_at": None,
        "created_at": 0.0,
        "created_by": "test",
    }
    return GatewayKey(**{**values, **overrides})


def test_model_globs():
    assert key().allows_model("anything")
    narrow = key(models=("gpt-4o*", "claude-3-?-haiku"))
    assert narrow.allows_model("gpt-4o-mini") and narrow.allows_model("claude-3-5-haiku")
    assert not narrow.allows_model("gpt-4.1") and not narrow.allows_model("GPT-4o")


def test_expiry():
    assert not key().is_expired()
    assert key(expires_at=100.0).is_expired(now=100.0)
    assert not key(expires_at=100.0).is_expired(now=99.0)


@pytest.fixture
def store(tmp_path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "signalvault.db")
    store.open()
    yield store
    store.close()


@pytest.fixture
def keyring(store) -> KeyRing:
    return KeyRing(store, load_pepper(store, MasterKey.from_bytes(bytes(range(32)))))


def test_pepper_is_created_once_and_stored_wrapped(store):
    master = MasterKey.from_bytes(bytes(range(32)))
    pepper = load_pepper(store, master)
    assert load_pepper(store, master) == pepper
    wrapped, master_key_id = store.get_wrapped_secret("key-pepper")
    assert pepper not in wrapped and master_key_id == master.key_id


def test_create_and_authenticate(keyring, store):
    created, secret = keyring.create(name="ci", environment="prod", models=("gpt-*",), rpm=10)
    assert secret.startswith("sv-prod-") and created.prefix == display_prefix(secret)
    assert keyring.authenticate(secret).id == created.id
    assert keyring.authenticate(secret).id == created.id  # from the cache
    [listed] = store.list_keys()
    assert listed.id == created.id and listed.models == ("gpt-*",) and listed.rpm == 10
    store.flush()
    assert store.get_key(created.id).last_used_at is not None


def test_secret_is_not_stored(keyring, store):
    _, secret = keyring.create(name="ci", environment="dev")
    store.flush()
    for suffix in ("", "-wal"):
        assert secret.encode() not in store.path.with_name(store.path.name + suffix).read_bytes()


@pytest.mark.parametrize(
    ("presented", "message", "code"),
    [
        (None, "missing API key", "invalid_api_key"),
        ("", "missing API key", "invalid_api_key"),
        ("not-a-key", "invalid API key", "invalid_api_key"),
    ],
)
def test_missing_and_malformed_keys(keyring, presented, message, code):
    with pytest.raises(AuthError, match=message) as caught:
        keyring.authenticate(presented)
    assert caught.value.code == code and caught.value.status_code == 401


def test_unknown_well_formed_key(keyring):
    with pytest.raises(AuthError, match="invalid API key") as caught:
        keyring.authenticate(generate_secret("dev"))
    assert caught.value.code == "invalid_api_key"


def test_revoked_key_is_refused_on_the_next_request(keyring, store):
    created, secret = keyring.create(name="ci", environment="dev")
    keyring.authenticate(secret)  # now cached
    # Revoked through another KeyRing on the same store, as another process would.
    other = KeyRing(store, load_pepper(store, MasterKey.from_bytes(bytes(range(32)))))
    assert other.revoke(created.id).revoked_at is not None
    with pytest.raises(AuthError, match="revoked") as caught:
        keyring.authenticate(secret)
    assert caught.value.code == "revoked_api_key"


def test_expired_key_is_refused(keyring):
    _, secret = keyring.create(name="ci", environment="dev", expires_in=0)
    with pytest.raises(AuthError, match="expired") as caught:
        keyring.authenticate(secret)
    assert caught.value.code == "expired_api_key"


def test_revoke_unknown_or_twice(keyring):
    with pytest.raises(ConfigError, match="no key with id key_nope"):
        keyring.revoke("key_nope")
    created, _ = keyring.create(name="ci", environment="dev")
    keyring.revoke(created.id)
    with pytest.raises(ConfigError, match="already revoked"):
        keyring.revoke(created.id)


def test_create_validates_name_and_environment(keyring):
    with pytest.raises(ConfigError, match="needs a name"):
        keyring.create(name=" ", environment="dev")
    with pytest.raises(ConfigError, match="environment must be"):
        keyring.create(name="x", environment="Prod")


def test_expiry_is_relative_to_creation(keyring):
    before = time.time()
    created, _ = keyring.create(name="ci", environment="dev", expires_in=3600)
    assert before + 3600 <= created.expires_at <= time.time() + 3600
