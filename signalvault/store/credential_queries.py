"""Provider credentials in the store: wrapped secrets per (provider, environment), with the
`credentials` change counter every gateway process watches. Never sees a plaintext secret."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from signalvault.errors import StoreError
from signalvault.store.mixin import StoreMixin
from signalvault.store.schema import provider_credentials

COUNTER = "credentials"


def wrap_name(provider: str, environment: str) -> str:
    """What a stored credential is wrapped under (by the master key), so it unwraps only as
    itself; the credential service and master-key rotation both wrap with it."""
    return f"provider:{provider}:{environment or '*'}"


@dataclass(frozen=True, slots=True)
class StoredCredential:
    """A provider credential as stored: wrapped, with the last characters as a hint."""

    provider: str
    environment: str  # "" for the provider-wide credential
    wrapped: bytes
    master_key_id: str
    hint: str
    created_at: float
    created_by: str
    rotated_at: float | None = None
    rotated_by: str | None = None


class CredentialStore(Protocol):
    def credentials_version(self) -> int: ...
    def list_credentials(self) -> list[StoredCredential]: ...
    def put_credential(self, credential: StoredCredential) -> StoredCredential | None: ...
    def delete_credential(self, provider: str, environment: str) -> StoredCredential | None: ...
    def credentials_not_wrapped_by(
        self, master_key_ids: Sequence[str], limit: int
    ) -> list[StoredCredential]: ...
    def rewrap_credentials(
        self, batch: Sequence[tuple[StoredCredential, bytes]], master_key_id: str
    ) -> int: ...
    def count_credentials_by_master_key(self) -> dict[str, int]: ...


def _from_row(row: Any) -> StoredCredential:
    return StoredCredential(
        provider=row.provider,
        environment=row.environment,
        wrapped=row.wrapped,
        master_key_id=row.master_key_id,
        hint=row.hint,
        created_at=row.created_at,
        created_by=row.created_by,
        rotated_at=row.rotated_at,
        rotated_by=row.rotated_by,
    )


def _where(provider: str, environment: str) -> Any:
    c = provider_credentials.c
    return and_(c.provider == provider, c.environment == environment)


class CredentialQueries(StoreMixin):
    """Mixed into `SqlStore`: uses its engine and counters."""

    def credentials_version(self) -> int:
        """Changes after every committed credential change (backends add a faster signal)."""
        return self._stored_counter(COUNTER)

    def list_credentials(self) -> list[StoredCredential]:
        c = provider_credentials.c
        with self._connect() as conn:
            rows = conn.execute(select(provider_credentials).order_by(c.provider, c.environment))
            return [_from_row(row) for row in rows]

    def put_credential(self, credential: StoredCredential) -> StoredCredential | None:
        """Store or replace the credential of (provider, environment); the one it replaced.

        A replacement keeps `created_*` and sets `rotated_*` from `credential.created_*`.
        """
        for _ in range(2):  # a concurrent first insert of the same pair: update it instead
            try:
                with self._connect(write=True) as conn:
                    where = _where(credential.provider, credential.environment)
                    row = conn.execute(select(provider_credentials).where(where)).first()
                    if row is None:
                        conn.execute(
                            provider_credentials.insert().values(
                                provider=credential.provider,
                                environment=credential.environment,
                                wrapped=credential.wrapped,
                                master_key_id=credential.master_key_id,
                                hint=credential.hint,
                                created_at=credential.created_at,
                                created_by=credential.created_by,
                            )
                        )
                    else:
                        conn.execute(
                            update(provider_credentials)
                            .where(where)
                            .values(
                                wrapped=credential.wrapped,
                                master_key_id=credential.master_key_id,
                                hint=credential.hint,
                                rotated_at=credential.created_at,
                                rotated_by=credential.created_by,
                            )
                        )
                    self._bump(conn, COUNTER)
            except IntegrityError:
                continue
            self.changed(COUNTER)
            return None if row is None else _from_row(row)
        raise StoreError("could not store the credential (concurrent changes); try again")

    def delete_credential(self, provider: str, environment: str) -> StoredCredential | None:
        """Remove a credential; the one removed, or None if there was none."""
        with self._connect(write=True) as conn:
            where = _where(provider, environment)
            row = conn.execute(select(provider_credentials).where(where)).first()
            if row is not None:
                conn.execute(provider_credentials.delete().where(where))
                self._bump(conn, COUNTER)
        if row is None:
            return None
        self.changed(COUNTER)
        return _from_row(row)

    def credentials_not_wrapped_by(
        self, master_key_ids: Sequence[str], limit: int
    ) -> list[StoredCredential]:
        c = provider_credentials.c
        with self._connect() as conn:
            rows = conn.execute(
                select(provider_credentials)
                .where(c.master_key_id.not_in(master_key_ids))
                .limit(limit)
            )
            return [_from_row(row) for row in rows]

    def rewrap_credentials(
        self, batch: Sequence[tuple[StoredCredential, bytes]], master_key_id: str
    ) -> int:
        """Replace wrapped credentials in one transaction, each unless it changed meanwhile.

        The plaintext is the same, so no counter moves: caches stay right."""
        if not batch:
            return 0
        c = provider_credentials.c
        rows = [
            {
                "_provider": old.provider,
                "_environment": old.environment,
                "_old": old.wrapped,
                "_new": wrapped,
            }
            for old, wrapped in batch
        ]
        with self._connect(write=True) as conn:
            return int(
                conn.execute(
                    update(provider_credentials)
                    .where(
                        c.provider == bindparam("_provider"),
                        c.environment == bindparam("_environment"),
                        c.wrapped == bindparam("_old"),
                    )
                    .values(wrapped=bindparam("_new"), master_key_id=master_key_id),
                    rows,
                ).rowcount
            )

    def count_credentials_by_master_key(self) -> dict[str, int]:
        c = provider_credentials.c
        with self._connect() as conn:
            rows = conn.execute(select(c.master_key_id, func.count()).group_by(c.master_key_id))
            return {row[0]: int(row[1]) for row in rows}
