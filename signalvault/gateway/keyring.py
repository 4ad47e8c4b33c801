"""Issuing, rotating, revoking and authenticating gateway keys over a Store.

Keys are cached in memory by hash; every request checks the store's key version (a few µs), so
a revocation or rotation made by any process is honoured on the very next request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from signalvault.crypto.envelope import MasterKeys, new_key
from signalvault.crypto.gateway_keys import (
    GatewayKey,
    check_environment,
    display_prefix,
    generate_secret,
    hash_secret,
    is_well_formed,
    new_key_id,
)
from signalvault.errors import AuthError, ConfigError
from signalvault.store import Store
from signalvault.store.sql import TOUCH_KEY
from signalvault.store.writer import WriteOp
from signalvault.trail.audit import AuditTrail

PEPPER_NAME = "key-pepper"
LAST_USED_EVERY = 60.0  # seconds; last-used time is advisory, no need to write it per request
DEFAULT_GRACE = 86400.0  # seconds the previous secret keeps working after a rotation
EVENT_KIND = "gateway_key"  # audit records of key changes: details.action says which


def load_pepper(store: Store, master_key: MasterKeys) -> bytes:
    """The HMAC pepper for key hashes, created and stored wrapped on first use."""
    found = store.get_wrapped_secret(PEPPER_NAME)
    if found is None:
        store.put_wrapped_secret(
            PEPPER_NAME, master_key.wrap(PEPPER_NAME, new_key()), master_key.key_id
        )
        found = store.get_wrapped_secret(PEPPER_NAME)
        assert found is not None
    return master_key.unwrap(PEPPER_NAME, found[0], found[1])


class KeyRing:
    def __init__(self, store: Store, pepper: bytes, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._pepper = pepper
        self._clock = clock
        # By secret hash: the key, and when that secret stops working (None: current secret).
        self._cache: dict[bytes, tuple[GatewayKey, float | None]] = {}
        self._version = -1
        self._touched: dict[str, float] = {}

    @property
    def pepper(self) -> bytes:
        """The HMAC key of key hashes; personal API tokens (accounts) are hashed with it too."""
        return self._pepper

    def create(
        self,
        *,
        name: str,
        environment: str,
        project: str = "default",
        models: tuple[str, ...] = (),
        rpm: int | None = None,
        tpm: int | None = None,
        budget_tokens: int | None = None,
        expires_in: float | None = None,
        created_by: str = "cli",
    ) -> tuple[GatewayKey, str]:
        """Issue a key; returns its metadata and the secret, which is never stored."""
        if not name.strip():
            raise ConfigError("a key needs a name")
        check_environment(environment)
        secret = generate_secret(environment)
        now = self._clock()
        key = GatewayKey(
            id=new_key_id(),
            name=name,
            project=project,
            environment=environment,
            prefix=display_prefix(secret),
            models=models,
            rpm=rpm,
            tpm=tpm,
            expires_at=None if expires_in is None else now + expires_in,
            revoked_at=None,
            created_at=now,
            created_by=created_by,
            budget_tokens=budget_tokens,
        )
        self._store.insert_key(key, hash_secret(self._pepper, secret))
        return key, secret

    def rotate(self, key_id: str, grace_seconds: float = DEFAULT_GRACE) -> tuple[GatewayKey, str]:
        """Give a key a new secret (same id, name, project, environment, models and limits);
        the old secret keeps working for `grace_seconds`. Returns the key and the new secret,
        which is never stored.

        Raises:
            ConfigError: no such key, or it is revoked or expired; a negative grace.
        """
        if grace_seconds < 0:
            raise ConfigError("the grace period cannot be negative")
        key = self._store.get_key(key_id)
        if key is None:
            raise ConfigError(f"no key with id {key_id}")
        now = self._clock()
        if key.revoked_at is not None:
            raise ConfigError(f"key {key_id} is revoked; create a new key instead")
        if key.is_expired(now):
            raise ConfigError(f"key {key_id} has expired; create a new key instead")
        secret = generate_secret(key.environment)
        rotated = self._store.rotate_key(
            key_id,
            hash_secret(self._pepper, secret),
            display_prefix(secret),
            now,
            now + grace_seconds,
        )
        if rotated is None:  # revoked in the meantime
            raise ConfigError(f"key {key_id} is revoked; create a new key instead")
        return rotated, secret

    def revoke(self, key_id: str) -> GatewayKey:
        """Revoke a key: every secret it has (a rotation's previous one too) stops working."""
        if not self._store.revoke_key(key_id, self._clock()):
            key = self._store.get_key(key_id)
            if key is None:
                raise ConfigError(f"no key with id {key_id}")
            raise ConfigError(f"key {key_id} is already revoked")
        key = self._store.get_key(key_id)
        assert key is not None
        return key

    def authenticate(self, secret: str | None) -> GatewayKey:
        """The live key for `secret`.

        Raises:
            AuthError: missing, unknown, revoked, expired, or a secret replaced by a rotation
                whose grace period is over (the message says which, and never whether some
                other key exists).
        """
        if not secret:
            raise AuthError("missing API key: send it as `Authorization: Bearer <key>`")
        version = self._store.keys_version()
        if version != self._version:
            self._cache.clear()
            self._version = version
        digest = hash_secret(self._pepper, secret)
        entry = self._cache.get(digest)
        if entry is None:
            # Checked once per secret: one whose digest is cached passed this when it was
            # cached (the pattern and base62 checksum cost ~1.4 µs on every request).
            if not is_well_formed(secret):
                raise AuthError("invalid API key")
            entry = self._store.find_secret(digest)
            if entry is None:
                raise AuthError("invalid API key")
            self._cache[digest] = entry
        key, valid_until = entry
        if key.revoked_at is not None:
            raise AuthError("this API key has been revoked", code="revoked_api_key")
        now = self._clock()
        if valid_until is not None and now >= valid_until:
            raise AuthError(
                "this API key was rotated and its old secret no longer works: use the new secret",
                code="rotated_api_key",
            )
        if key.is_expired(now):
            raise AuthError("this API key has expired", code="expired_api_key")
        if now - self._touched.get(key.id, 0.0) >= LAST_USED_EVERY:
            self._touched[key.id] = now
            self._store.write_later([WriteOp(TOUCH_KEY, {"_id": key.id, "last_used_at": now})])
            self._cache[digest] = (replace(key, last_used_at=now), valid_until)
        return key


def record_key_event(
    trail: AuditTrail, action: str, actor: str, key: GatewayKey, **extra: Any
) -> str:
    """Record a key change (`create`, `rotate`, `revoke`) in the audit trail: ids, names and
    prefixes, never a secret. Returns the record id."""
    details: dict[str, Any] = {
        "action": action,
        "key_id": key.id,
        "name": key.name,
        "environment": key.environment,
        "prefix": key.prefix,
        **extra,
    }
    return trail.record_event(EVENT_KIND, actor, details, project=key.project)


def rotate_key(
    keyring: KeyRing,
    trail: AuditTrail,
    key_id: str,
    actor: str,
    grace_seconds: float = DEFAULT_GRACE,
) -> tuple[GatewayKey, str]:
    """Rotate a key and record it (previous prefix, grace end). Returns the key and new secret."""
    key, secret = keyring.rotate(key_id, grace_seconds)
    record_key_event(
        trail,
        "rotate",
        actor,
        key,
        previous_prefix=key.previous_prefix,
        grace_until=key.grace_until,
    )
    return key, secret
