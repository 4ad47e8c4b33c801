"""Issuing, listing, revoking and authenticating gateway keys over a Store.

Keys are cached in memory by hash; every request checks the store's key version (a few µs), so
a revocation made by any process is honoured on the very next request.
"""

from __future__ import annotations

import time
from dataclasses import replace

from signalvault.crypto import MasterKeys, new_key
from signalvault.errors import AuthError, ConfigError
from signalvault.keys import (
    GatewayKey,
    check_environment,
    display_prefix,
    generate_secret,
    hash_secret,
    is_well_formed,
    new_key_id,
)
from signalvault.store import Store
from signalvault.store.sql import TOUCH_KEY
from signalvault.store.writer import WriteOp

PEPPER_NAME = "key-pepper"
LAST_USED_EVERY = 60.0  # seconds; last-used time is advisory, no need to write it per request


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
    def __init__(self, store: Store, pepper: bytes) -> None:
        self._store = store
        self._pepper = pepper
        self._cache: dict[bytes, GatewayKey] = {}
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
        now = time.time()
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

    def revoke(self, key_id: str) -> GatewayKey:
        if not self._store.revoke_key(key_id, time.time()):
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
            AuthError: missing, unknown, revoked or expired (the message says which, and never
                whether some other key exists).
        """
        if not secret:
            raise AuthError("missing API key: send it as `Authorization: Bearer <key>`")
        if not is_well_formed(secret):
            raise AuthError("invalid API key")
        version = self._store.keys_version()
        if version != self._version:
            self._cache.clear()
            self._version = version
        digest = hash_secret(self._pepper, secret)
        key = self._cache.get(digest)
        if key is None:
            key = self._store.find_key(digest)
            if key is None:
                raise AuthError("invalid API key")
            self._cache[digest] = key
        if key.revoked_at is not None:
            raise AuthError("this API key has been revoked", code="revoked_api_key")
        now = time.time()
        if key.is_expired(now):
            raise AuthError("this API key has expired", code="expired_api_key")
        if now - self._touched.get(key.id, 0.0) >= LAST_USED_EVERY:
            self._touched[key.id] = now
            self._store.write_later([WriteOp(TOUCH_KEY, {"_id": key.id, "last_used_at": now})])
            self._cache[digest] = replace(key, last_used_at=now)
        return key
