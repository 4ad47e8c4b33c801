"""The store over SQLAlchemy Core: queries shared by every database, and the group-commit writer.

Backends subclass `SqlStore` for their connection set-up (pragmas, pools) and fast paths.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Float,
    and_,
    bindparam,
    cast,
    func,
    null,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from signalvault.crypto.gateway_keys import GatewayKey
from signalvault.errors import StoreError
from signalvault.store.credential_queries import CredentialQueries
from signalvault.store.lifecycle import LifecycleQueries
from signalvault.store.policy_queries import PolicyQueries
from signalvault.store.record_queries import RecordQueries
from signalvault.store.schema import (
    audit_records,
    data_keys,
    gateway_keys,
    key_secrets,
    policies,
    state,
    wrapped_secrets,
)
from signalvault.store.setting_queries import SettingQueries
from signalvault.store.writer import GroupCommitWriter, WriteOp, describe_error

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest migration's revision (tests/store checks it against alembic's head): a store found
# at it opens without importing alembic, ~10 MB of a serving process's memory.
SCHEMA_HEAD = "0013"

INSERT_RECORD = audit_records.insert()
RECORD_COLUMNS = tuple(column.name for column in audit_records.c)
INSERT_DATA_KEY = data_keys.insert()
# Every completion sets all of these, so completions batch into one executemany.
COMPLETE_FIELDS = (
    "completed_at",
    "provider",
    "model_used",
    "status_code",
    "outcome",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "tokens_estimated",
    "latency_ms",
    "ttfb_ms",
    "response_ct",
    "guardrails",
    "attempts",
    "classification",  # output findings can raise it (SPEC §7c)
    # Tool calls the answer asked for, with the results the request held (trail.linked); NULL
    # keeps what the insert wrote.
    "events",
    "events_ct",
    "tool_calls",
)
_KEPT_UNLESS_SET = frozenset({"events", "events_ct", "tool_calls"})
# A sealed record never changes: a completion arriving after the sealer gave up waiting
# ([audit] seal_after_seconds) matches no row and is dropped; the writer logs how many.
COMPLETE_RECORD = (
    update(audit_records)
    # A sealed record never changes; a record erased while its request was in flight stays a
    # tombstone.
    .where(
        audit_records.c.id == bindparam("_id"),
        audit_records.c.seq.is_(None),
        audit_records.c.tombstoned_at.is_(None),
    )
    .values(
        {
            name: func.coalesce(bindparam(name), audit_records.c[name])
            if name in _KEPT_UNLESS_SET
            else bindparam(name)
            for name in COMPLETE_FIELDS
        }
    )
    .execution_options(unmatched_log="late completion(s) dropped: record already sealed")
)
TOUCH_KEY = (
    update(gateway_keys)
    .where(gateway_keys.c.id == bindparam("_id"))
    .values(last_used_at=bindparam("last_used_at"))
)


@contextlib.contextmanager
def connect(engine: Engine, *, write: bool = False) -> Iterator[Connection]:
    """A connection (a transaction if `write`); driver failures become StoreError.

    IntegrityError passes through: callers that race on a unique name handle it.
    """
    try:
        with engine.begin() if write else engine.connect() as conn:
            yield conn
    except IntegrityError:
        raise
    except SQLAlchemyError as exc:
        raise StoreError(
            f"the store could not complete the operation: {describe_error(exc)}"
        ) from None


def key_from_row(row: Any) -> GatewayKey:
    return GatewayKey(
        id=row.id,
        name=row.name,
        project=row.project,
        environment=row.environment,
        prefix=row.prefix,
        models=tuple(orjson.loads(row.models)),
        rpm=row.rpm,
        tpm=row.tpm,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        created_at=row.created_at,
        created_by=row.created_by,
        last_used_at=row.last_used_at,
        budget_tokens=row.budget_tokens,
        rotated_at=row.rotated_at,
        grace_until=row.grace_until,
        previous_prefix=row.previous_prefix,
    )


class SqlStore(RecordQueries, LifecycleQueries, PolicyQueries, CredentialQueries, SettingQueries):
    """Audit records, keys and wrapped secrets in one SQL database."""

    def __init__(self, engine: Engine, batch_max: int = 512, busy_timeout: float = 5.0) -> None:
        self.engine = engine
        self.writer = GroupCommitWriter(engine, batch_max, busy_timeout)
        self._is_open = False

    # -- lifecycle -----------------------------------------------------------------------------
    def open(self) -> None:
        """Bring the schema to the newest migration and start the writer."""
        try:
            self._migrate()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the store: {describe_error(exc)}") from None
        self._is_open = True

    def _migrate(self) -> None:
        """Upgrade to the newest migration in one transaction."""
        with self.engine.begin() as conn:
            if self._is_at_head(conn):
                return
            self._lock_migrations(conn)
            from alembic import command  # only when there is something to upgrade
            from alembic.config import Config

            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def _is_at_head(self, conn: Connection) -> bool:
        """Whether the schema is at SCHEMA_HEAD already, read without a lock (a schema at head
        stays there). Backends that can ask cheaply say so; the default lets alembic decide."""
        return False

    def _lock_migrations(self, conn: Connection) -> None:
        """Called in the migration transaction first: backends serialize concurrent upgrades."""

    def close(self) -> None:
        if self._is_open:
            self.writer.stop()
            self._is_open = False
        self.engine.dispose()

    def ping(self) -> None:
        """Raises StoreError if the database does not answer."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            raise StoreError("the store does not answer") from None

    # -- writes ---------------------------------------------------------------------------------
    async def write_ahead(self, ops: Sequence[WriteOp]) -> None:
        """Commit `ops` before returning (group commit with concurrent callers)."""
        await self.writer.write(ops)

    def write_later(self, ops: Sequence[WriteOp]) -> None:
        self.writer.submit(ops)

    def flush(self) -> None:
        self.writer.flush()

    # -- gateway keys ---------------------------------------------------------------------------
    def _connect(self, *, write: bool = False) -> contextlib.AbstractContextManager[Connection]:
        return connect(self.engine, write=write)

    def keys_version(self) -> int:
        with self._connect() as conn:
            value = conn.execute(select(state.c.value).where(state.c.name == "keys")).scalar()
        return int(value or 0)

    def find_key(self, secret_hash: bytes) -> GatewayKey | None:
        found = self.find_secret(secret_hash)
        return None if found is None else found[0]

    def find_secret(self, secret_hash: bytes) -> tuple[GatewayKey, float | None] | None:
        """The key a secret belongs to, and when that secret stops working: None for the
        current secret, the grace end for one a rotation replaced. One round trip."""
        k, s = gateway_keys.c, key_secrets.c
        query = union_all(
            select(gateway_keys, cast(null(), Float).label("valid_until")).where(
                k.secret_hash == secret_hash
            ),
            select(gateway_keys, s.valid_until)
            .join_from(key_secrets, gateway_keys, s.key_id == k.id)
            .where(s.secret_hash == secret_hash),
        )
        with self._connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else (key_from_row(row), row.valid_until)

    def insert_key(self, key: GatewayKey, secret_hash: bytes) -> None:
        values = {f: getattr(key, f) for f in GatewayKey.__dataclass_fields__}
        values["models"] = orjson.dumps(list(key.models)).decode()
        with self._connect(write=True) as conn:
            conn.execute(gateway_keys.insert().values(**values, secret_hash=secret_hash))
            self._bump(conn, "keys")
        self.changed("keys")

    def list_keys(self, prefix: str | None = None) -> list[GatewayKey]:
        query = select(gateway_keys).order_by(gateway_keys.c.created_at)
        if prefix:
            # A rotated key is also found by the prefix of a secret it replaced.
            retired = select(key_secrets.c.key_id).where(
                key_secrets.c.prefix.startswith(prefix, autoescape=True)
            )
            query = query.where(
                or_(
                    gateway_keys.c.prefix.startswith(prefix, autoescape=True),
                    gateway_keys.c.id.in_(retired),
                )
            )
        with self._connect() as conn:
            return [key_from_row(row) for row in conn.execute(query)]

    def get_key(self, key_id: str) -> GatewayKey | None:
        with self._connect() as conn:
            row = conn.execute(select(gateway_keys).where(gateway_keys.c.id == key_id)).first()
        return None if row is None else key_from_row(row)

    def revoke_key(self, key_id: str, when: float) -> bool:
        """Mark a key revoked; False if no such key or it was already revoked."""
        with self._connect(write=True) as conn:
            result = conn.execute(
                update(gateway_keys)
                .where(and_(gateway_keys.c.id == key_id, gateway_keys.c.revoked_at.is_(None)))
                .values(revoked_at=when)
            )
            if result.rowcount:
                self._bump(conn, "keys")
        if result.rowcount:
            self.changed("keys")
        return bool(result.rowcount)

    def rotate_key(
        self, key_id: str, secret_hash: bytes, prefix: str, now: float, grace_until: float
    ) -> GatewayKey | None:
        """Give a live key a new secret; its old one works until `grace_until`. The updated key,
        or None if there is no such live (unrevoked) key.

        Raises:
            StoreError: another rotation of the key committed first.
        """
        k = gateway_keys.c
        try:
            with self._connect(write=True) as conn:
                row = conn.execute(
                    select(gateway_keys).where(and_(k.id == key_id, k.revoked_at.is_(None)))
                ).first()
                if row is None:
                    return None
                conn.execute(
                    key_secrets.insert().values(
                        secret_hash=row.secret_hash,
                        key_id=key_id,
                        prefix=row.prefix,
                        retired_at=now,
                        valid_until=grace_until,
                    )
                )
                updated = conn.execute(
                    update(gateway_keys)
                    .where(and_(k.id == key_id, k.secret_hash == row.secret_hash))
                    .values(
                        secret_hash=secret_hash,
                        prefix=prefix,
                        previous_prefix=row.prefix,
                        rotated_at=now,
                        grace_until=grace_until,
                    )
                )
                if not updated.rowcount:  # rolls the transaction back
                    raise StoreError(f"key {key_id} was changed meanwhile; try again")
                self._bump(conn, "keys")
                changed = conn.execute(select(gateway_keys).where(k.id == key_id)).one()
        except IntegrityError:  # a concurrent rotation retired the same secret first
            raise StoreError(f"key {key_id} was changed meanwhile; try again") from None
        self.changed("keys")
        return key_from_row(changed)

    def key_tokens_since(self, key_id: str, since: float) -> int:
        """Tokens the records of one key used since `since` (seeds the monthly budget)."""
        query = select(func.coalesce(func.sum(audit_records.c.total_tokens), 0)).where(
            and_(audit_records.c.key_id == key_id, audit_records.c.created_at >= since)
        )
        with self._connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def changed(self, name: str) -> None:
        """Called after a commit that bumped counter `name`: backends may notify other processes."""

    def _bump(self, conn: Any, name: str) -> None:
        updated = conn.execute(
            update(state).where(state.c.name == name).values(value=state.c.value + 1)
        )
        if not updated.rowcount:
            conn.execute(state.insert().values(name=name, value=1))

    # -- wrapped secrets and data keys ----------------------------------------------------------
    def get_wrapped_secret(self, name: str) -> tuple[bytes, str] | None:
        with self._connect() as conn:
            row = conn.execute(
                select(wrapped_secrets).where(wrapped_secrets.c.name == name)
            ).first()
        return None if row is None else (row.wrapped, row.master_key_id)

    def put_wrapped_secret(self, name: str, wrapped: bytes, master_key_id: str) -> bool:
        """Store a wrapped secret unless one of that name exists; True if this call stored it."""
        try:
            with self._connect(write=True) as conn:
                conn.execute(
                    wrapped_secrets.insert().values(
                        name=name,
                        wrapped=wrapped,
                        master_key_id=master_key_id,
                        created_at=time.time(),
                    )
                )
        except IntegrityError:
            return False
        return True

    def find_data_key(self, subject: str) -> tuple[str, bytes, str] | None:
        """The newest live data key of a subject: (id, wrapped, master_key_id)."""
        with self._connect() as conn:
            row = conn.execute(
                select(data_keys.c.id, data_keys.c.wrapped, data_keys.c.master_key_id)
                .where(and_(data_keys.c.subject == subject, data_keys.c.destroyed_at.is_(None)))
                .order_by(data_keys.c.created_at.desc())
                .limit(1)
            ).first()
        return None if row is None else (row.id, row.wrapped, row.master_key_id)

    def get_data_key(self, key_id: str) -> tuple[bytes | None, str] | None:
        """(wrapped or None if destroyed, master_key_id) of one data key."""
        with self._connect() as conn:
            row = conn.execute(
                select(data_keys.c.wrapped, data_keys.c.master_key_id).where(
                    data_keys.c.id == key_id
                )
            ).first()
        return None if row is None else (row.wrapped, row.master_key_id)

    # -- guardrail policies -----------------------------------------------------------------------
    def active_policy(self) -> tuple[int, str] | None:
        """(version, rules JSON) of the active policy."""
        with self._connect() as conn:
            row = conn.execute(
                select(policies.c.version, policies.c.rules).where(policies.c.status == "active")
            ).first()
        return None if row is None else (row.version, row.rules)
