"""Provider credentials stored encrypted under the master key, one per provider and optionally
one per environment, changed without a restart. Shown only masked; every change is audited.

A request uses, in order: the credential stored for its gateway key's environment, the
provider-wide stored credential, then the key from the configuration (`api_key`, `api_key_env`,
`api_key_file`). Imports the store and the audit trail, never HTTP.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, replace
from typing import Any

from signalvault.config import Secret
from signalvault.crypto.envelope import MasterKeys
from signalvault.crypto.gateway_keys import check_environment
from signalvault.errors import ConfigError, CryptoError
from signalvault.store import Store
from signalvault.store.credential_queries import StoredCredential, wrap_name
from signalvault.trail.audit import AuditTrail

log = logging.getLogger("signalvault.credentials")

ALL_ENVIRONMENTS = ""  # stored environment of a provider-wide credential
SET_EVENT, REMOVED_EVENT = "provider_credential_set", "provider_credential_removed"
MAX_CHARS = 4096
HINT_CHARS = 4
HINT_MIN_CHARS = 16  # shorter secrets show no characters at all
# Printable ASCII without spaces: a credential goes into an HTTP header, so CR/LF must never pass.
_SECRET_PATTERN = re.compile(r"[\x21-\x7e]+")


def mask(hint: str) -> str:
    return "****" + hint


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """A stored credential as it may be shown: masked, with who set it and when."""

    provider: str
    environment: str | None  # None: every environment
    masked: str
    master_key_id: str
    created_at: float
    created_by: str
    rotated_at: float | None
    rotated_by: str | None

    @classmethod
    def of(cls, stored: StoredCredential) -> CredentialInfo:
        return cls(
            provider=stored.provider,
            environment=stored.environment or None,
            masked=mask(stored.hint),
            master_key_id=stored.master_key_id,
            created_at=stored.created_at,
            created_by=stored.created_by,
            rotated_at=stored.rotated_at,
            rotated_by=stored.rotated_by,
        )


def check_secret(secret: str) -> str:
    """The credential with surrounding whitespace removed.

    Raises:
        ConfigError: empty, too long, or not printable ASCII (the message never quotes it).
    """
    secret = secret.strip()
    if not secret:
        raise ConfigError("the credential is empty")
    if len(secret) > MAX_CHARS:
        raise ConfigError(f"the credential is longer than {MAX_CHARS} characters")
    if not _SECRET_PATTERN.fullmatch(secret):
        raise ConfigError("the credential must be printable ASCII without spaces or line breaks")
    return secret


class ProviderCredentials:
    """Set, remove and list stored credentials; resolve the one a request uses (cached)."""

    def __init__(
        self,
        store: Store,
        master_key: MasterKeys,
        trail: AuditTrail,
        providers: tuple[str, ...] | None = None,
    ) -> None:
        self._store = store
        self._master_key = master_key
        self._trail = trail
        self._providers = providers  # configured provider names; None accepts any
        self._version = -1
        self._cache: dict[tuple[str, str], Secret] = {}

    def set(
        self, provider: str, secret: str, actor: str, environment: str | None = None
    ) -> CredentialInfo:
        """Store (or replace) a credential and record the change, masked before and after.

        Raises:
            ConfigError: unknown provider, bad environment name, or an unusable secret.
        """
        env = self._check(provider, environment)
        secret = check_secret(secret)
        name = wrap_name(provider, env)
        hint = secret[-HINT_CHARS:] if len(secret) >= HINT_MIN_CHARS else ""
        stored = StoredCredential(
            provider=provider,
            environment=env,
            wrapped=self._master_key.wrap(name, secret.encode()),
            master_key_id=self._master_key.key_id,
            hint=hint,
            created_at=time.time(),
            created_by=actor,
        )
        before = self._store.put_credential(stored)
        self._record(
            SET_EVENT,
            actor,
            provider,
            env,
            before=None if before is None else mask(before.hint),
            after=mask(hint),
        )
        if before is not None:  # a rotation: the record keeps its first creation
            stored = replace(
                stored,
                created_at=before.created_at,
                created_by=before.created_by,
                rotated_at=stored.created_at,
                rotated_by=actor,
            )
        return CredentialInfo.of(stored)

    def remove(self, provider: str, actor: str, environment: str | None = None) -> CredentialInfo:
        """Delete a stored credential and record it; requests fall back at once.

        Raises:
            ConfigError: there is no such stored credential.
        """
        env = environment or ALL_ENVIRONMENTS
        if env:
            check_environment(env)
        removed = self._store.delete_credential(provider, env)
        if removed is None:
            where = f" for environment {env}" if env else ""
            raise ConfigError(f"no stored credential for provider {provider!r}{where}")
        self._record(REMOVED_EVENT, actor, provider, env, before=mask(removed.hint), after=None)
        return CredentialInfo.of(removed)

    def list_masked(self) -> list[CredentialInfo]:
        """Every stored credential, masked (the secrets are not unwrapped)."""
        return [CredentialInfo.of(c) for c in self._store.list_credentials()]

    def resolve(self, provider: str, environment: str | None) -> Secret | None:
        """The stored credential a request to `provider` uses for a key of `environment`, or
        None (then the configured key applies). A memory read unless a credential changed.

        Raises:
            StoreError: a change was signalled and the store cannot be read.
        """
        version = self._store.credentials_version()
        if version != self._version:
            # The version is read first: a change committed during the load moves it again.
            self._cache = self._load()
            self._version = version
        if environment:
            found = self._cache.get((provider, environment))
            if found is not None:
                return found
        return self._cache.get((provider, ALL_ENVIRONMENTS))

    def _load(self) -> dict[tuple[str, str], Secret]:
        loaded: dict[tuple[str, str], Secret] = {}
        for stored in self._store.list_credentials():
            name = wrap_name(stored.provider, stored.environment)
            try:
                raw = self._master_key.unwrap(name, stored.wrapped, stored.master_key_id)
            except CryptoError as exc:
                # Skipped (the configured key applies) and said loudly; never the secret.
                log.error("stored provider credential unusable: %s", exc)
                continue
            loaded[(stored.provider, stored.environment)] = Secret(raw.decode())
        return loaded

    def _check(self, provider: str, environment: str | None) -> str:
        if self._providers is not None and provider not in self._providers:
            known = ", ".join(sorted(self._providers)) or "none"
            raise ConfigError(f"no provider named {provider!r} is configured (configured: {known})")
        if environment:
            return check_environment(environment)
        return ALL_ENVIRONMENTS

    def _record(self, kind: str, actor: str, provider: str, env: str, **masked: Any) -> None:
        details = {"provider": provider, "environment": env or "*", **masked}
        self._trail.record_event(kind, actor, details)
