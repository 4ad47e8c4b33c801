"""The store: a `Store` protocol and `open_store(settings)` choosing the backend.

Callers depend on the protocol only, so PostgreSQL slots in beside SQLite without changing them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Engine

from signalvault.config import StoreSettings
from signalvault.crypto.envelope import ensure_data_dir
from signalvault.crypto.gateway_keys import GatewayKey
from signalvault.errors import ConfigError
from signalvault.store.credential_queries import CredentialStore
from signalvault.store.lifecycle import LifecycleStore
from signalvault.store.policy_queries import PolicyStore
from signalvault.store.record_queries import RecordFilter
from signalvault.store.setting_queries import SettingStore
from signalvault.store.writer import WriteOp


class Store(LifecycleStore, PolicyStore, CredentialStore, SettingStore, Protocol):
    engine: Engine  # for query modules that run their own transactions (seal_queries)

    def open(self) -> None: ...
    def close(self) -> None: ...
    def ping(self) -> None: ...
    async def write_ahead(self, ops: Sequence[WriteOp]) -> None: ...
    def write_later(self, ops: Sequence[WriteOp]) -> None: ...
    def flush(self) -> None: ...
    def keys_version(self) -> int: ...
    def find_key(self, secret_hash: bytes) -> GatewayKey | None: ...
    def find_secret(self, secret_hash: bytes) -> tuple[GatewayKey, float | None] | None: ...
    def rotate_key(
        self, key_id: str, secret_hash: bytes, prefix: str, now: float, grace_until: float
    ) -> GatewayKey | None: ...
    def insert_key(self, key: GatewayKey, secret_hash: bytes) -> None: ...
    def list_keys(self, prefix: str | None = None) -> list[GatewayKey]: ...
    def get_key(self, key_id: str) -> GatewayKey | None: ...
    def revoke_key(self, key_id: str, when: float) -> bool: ...
    def key_tokens_since(self, key_id: str, since: float) -> int: ...
    def get_wrapped_secret(self, name: str) -> tuple[bytes, str] | None: ...
    def put_wrapped_secret(self, name: str, wrapped: bytes, master_key_id: str) -> bool: ...
    def find_data_key(self, subject: str) -> tuple[str, bytes, str] | None: ...
    def get_data_key(self, key_id: str) -> tuple[bytes | None, str] | None: ...
    def active_policy(self) -> tuple[int, str] | None: ...
    def list_records(self, where: RecordFilter, limit: int = 50) -> list[dict[str, Any]]: ...
    def record_at_offset(self, where: RecordFilter, offset: int) -> str | None: ...
    def get_record(self, record_id: str) -> dict[str, Any] | None: ...
    def count_records(self) -> int: ...


POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def open_store(settings: StoreSettings, *, checkpoint_thread: bool = True) -> Store:
    """Create (not yet open) the configured store: PostgreSQL if `database_url` is set, else
    SQLite in the data directory. `checkpoint_thread=False`: SQLite copies its WAL back without
    a thread of its own (the writer's backstop, the last connection's close), for a command that
    mostly reads and is better single-threaded (see `cli/export.py`).

    Raises:
        ConfigError: the URL is malformed or names another database (the message never quotes
            the URL: it may hold a password).
    """
    if settings.database_url is not None:
        return _open_postgres(settings)
    from signalvault.store.sqlite import DATABASE_FILE, SqliteStore

    data_dir = ensure_data_dir(settings.data_dir)
    return SqliteStore(
        data_dir / DATABASE_FILE,
        synchronous=settings.sqlite_synchronous,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        batch_max=settings.audit_batch_max,
        checkpoint_thread=checkpoint_thread,
    )


def _open_postgres(settings: StoreSettings) -> Store:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from signalvault.store.postgres import PostgresStore

    assert settings.database_url is not None
    try:
        url = make_url(settings.database_url.reveal())
    except (ArgumentError, ValueError):
        raise ConfigError("[store] database_url is not a valid database URL") from None
    if url.drivername not in POSTGRES_SCHEMES:
        raise ConfigError(
            f"[store] database_url: unsupported database `{url.drivername}`; use "
            "postgresql://user@host/dbname, or leave it unset for the embedded SQLite store"
        )
    return PostgresStore(
        url.set(drivername="postgresql+psycopg"),
        pool_size=settings.pool_size,
        batch_max=settings.audit_batch_max,
    )


__all__ = ["RecordFilter", "Store", "WriteOp", "open_store"]
