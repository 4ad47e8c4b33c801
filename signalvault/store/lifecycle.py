"""Store queries for the record lifecycle: tombstones, legal holds, leases, data-subject
erasure and re-wrapping keys. A mixin of `SqlStore`; knows SQL, not policy.

A tombstone keeps id, kind, created_at, seq and leaf_hash (what the Merkle tree needs) and clears
everything else, so lawful deletion stays verifiable.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from sqlalchemy import (
    Boolean,
    Connection,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    not_,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from signalvault.errors import StoreError
from signalvault.store.mixin import StoreMixin
from signalvault.store.schema import (
    audit_records,
    data_keys,
    leases,
    legal_holds,
    tool_call_links,
    wrapped_secrets,
)
from signalvault.store.writer import describe_error

KEPT_BY_TOMBSTONE = ("id", "kind", "created_at", "seq", "leaf_hash")
TOMBSTONED = "tombstoned"  # `outcome` is NOT NULL, so a tombstone says what it is there
TOMBSTONE: dict[str, Any] = {
    column.name: False if isinstance(column.type, Boolean) else None
    for column in audit_records.c
    if column.name not in KEPT_BY_TOMBSTONE
}
TOMBSTONE["outcome"] = TOMBSTONED
HOLD_SCOPES = ("project", "key", "user", "record")
CHECKPOINT_TRIES = 50  # x 0.1 s: readers holding an old snapshot delay a WAL truncation


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Records of `expiring_kinds` created before a cutoff have expired; None keeps them. Per
    project, else default."""

    default: float | None
    projects: dict[str, float | None] = field(default_factory=dict)
    expiring_kinds: tuple[str, ...] = ("interaction",)
    # Per data class: records of the class created before it have expired, whatever their
    # project keeps (a class limit is a maximum, SPEC §7c).
    classes: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LegalHold:
    id: str
    scope: str
    value: str
    reason: str | None
    created_at: float
    created_by: str
    released_at: float | None
    released_by: str | None


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A key stored wrapped by a master key: a data key or a named secret (pepper, ...)."""

    table: str  # "data_keys" | "wrapped_secrets"
    name: str
    wrapped: bytes
    master_key_id: str


class LifecycleStore(Protocol):
    def tombstone_expired(
        self, cutoffs: Cutoffs, ids: Sequence[str], reason: str, now: float
    ) -> int: ...
    def find_expired(self, cutoffs: Cutoffs, limit: int) -> list[dict[str, Any]]: ...
    def count_expired(self, cutoffs: Cutoffs) -> list[tuple[str | None, int, int]]: ...
    def add_hold(self, hold: LegalHold) -> None: ...
    def list_holds(self, *, include_released: bool = False) -> list[LegalHold]: ...
    def release_hold(self, hold_id: str, actor: str, now: float) -> LegalHold | None: ...
    def holds_covering_user(self, end_user: str) -> list[LegalHold]: ...
    def acquire_lease(self, name: str, holder: str, seconds: float) -> bool: ...
    def release_lease(self, name: str, holder: str) -> None: ...
    def erase_subject(self, end_user: str, tag: str, now: float) -> tuple[int, int]: ...
    def reclaim_space(self) -> bool: ...
    def keys_not_wrapped_by(
        self, master_key_ids: Sequence[str], limit: int
    ) -> list[WrappedKey]: ...
    def rewrap(self, batch: Sequence[tuple[WrappedKey, bytes]], master_key_id: str) -> int: ...
    def count_wrapped_by(self) -> dict[str, int]: ...


def _is_held() -> ColumnElement[bool]:
    """An active hold covers the audit record of the enclosing query (correlated)."""
    h, t = legal_holds.c, audit_records.c
    return exists().where(
        h.released_at.is_(None),
        or_(
            and_(h.scope == "project", h.value == t.project),
            and_(h.scope == "key", h.value == t.key_id),
            and_(h.scope == "user", h.value == t.end_user),
            and_(h.scope == "record", h.value == t.id),
        ),
    )


def _is_expired(cutoffs: Cutoffs) -> ColumnElement[bool] | None:
    t = audit_records.c
    parts = [
        and_(t.project == project, t.created_at < cutoff)
        for project, cutoff in cutoffs.projects.items()
        if cutoff is not None
    ]
    if cutoffs.default is not None:
        named = list(cutoffs.projects)
        others = or_(t.project.is_(None), t.project.not_in(named)) if named else true()
        parts.append(and_(others, t.created_at < cutoffs.default))
    parts.extend(
        and_(t.classification == name, t.created_at < cutoff)
        for name, cutoff in cutoffs.classes.items()
        if cutoff is not None
    )
    if not parts:
        return None
    return and_(t.tombstoned_at.is_(None), t.kind.in_(cutoffs.expiring_kinds), or_(*parts))


def _hold(row: Any) -> LegalHold:
    return LegalHold(**{name: getattr(row, name) for name in LegalHold.__dataclass_fields__})


class LifecycleQueries(StoreMixin):
    """Mixed into `SqlStore`: uses its engine and counters."""

    # -- retention -----------------------------------------------------------------------------
    def find_expired(self, cutoffs: Cutoffs, limit: int) -> list[dict[str, Any]]:
        """Oldest expired records not under a legal hold, as stored (ciphertext included)."""
        expired = _is_expired(cutoffs)
        if expired is None:
            return []
        query = (
            select(audit_records)
            .where(expired, not_(_is_held()))
            .order_by(audit_records.c.created_at)
            .limit(limit)
        )
        with self._connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def count_expired(self, cutoffs: Cutoffs) -> list[tuple[str | None, int, int]]:
        """(project, expired and free, expired but held) per project."""
        expired = _is_expired(cutoffs)
        if expired is None:
            return []
        held = case((_is_held(), 1), else_=0)
        t = audit_records.c
        query = (
            select(t.project, func.count() - func.sum(held), func.sum(held))
            .where(expired)
            .group_by(t.project)
        )
        with self._connect() as conn:
            return [(row[0], int(row[1]), int(row[2])) for row in conn.execute(query)]

    def tombstone_expired(
        self, cutoffs: Cutoffs, ids: Sequence[str], reason: str, now: float
    ) -> int:
        """Tombstone those of `ids` that are still expired and free of holds (checked again in
        the same statement, so a hold placed meanwhile wins)."""
        expired = _is_expired(cutoffs)
        if expired is None or not ids:
            return 0
        t = audit_records.c
        statement = (
            update(audit_records)
            .where(t.id.in_(ids), expired, not_(_is_held()))
            .values({**TOMBSTONE, "tombstoned_at": now, "tombstone_reason": reason})
        )
        with self._connect(write=True) as conn:
            calls = _call_ids(conn.execute(select(t.call_id, t.events).where(t.id.in_(ids))))
            count = int(conn.execute(statement).rowcount)
            _drop_links(conn, calls, and_(t.id.in_(ids), t.tombstoned_at.is_not(None)))
            return count

    # -- legal holds ------------------------------------------------------------------------------
    def add_hold(self, hold: LegalHold) -> None:
        with self._connect(write=True) as conn:
            conn.execute(legal_holds.insert().values(**_fields(hold)))

    def list_holds(self, *, include_released: bool = False) -> list[LegalHold]:
        query = select(legal_holds).order_by(legal_holds.c.created_at)
        if not include_released:
            query = query.where(legal_holds.c.released_at.is_(None))
        with self._connect() as conn:
            return [_hold(row) for row in conn.execute(query)]

    def release_hold(self, hold_id: str, actor: str, now: float) -> LegalHold | None:
        """Release an active hold; None if there is no active hold with that id."""
        h = legal_holds.c
        with self._connect(write=True) as conn:
            done = conn.execute(
                update(legal_holds)
                .where(h.id == hold_id, h.released_at.is_(None))
                .values(released_at=now, released_by=actor)
            )
            if not done.rowcount:
                return None
            row = conn.execute(select(legal_holds).where(h.id == hold_id)).one()
        return _hold(row)

    def holds_covering_user(self, end_user: str) -> list[LegalHold]:
        """Active holds on the user, or on any record of theirs (by project, key or id)."""
        h, t = legal_holds.c, audit_records.c
        on_records = exists().where(
            t.end_user == end_user,
            or_(
                and_(h.scope == "project", h.value == t.project),
                and_(h.scope == "key", h.value == t.key_id),
                and_(h.scope == "record", h.value == t.id),
            ),
        )
        query = select(legal_holds).where(
            h.released_at.is_(None), or_(and_(h.scope == "user", h.value == end_user), on_records)
        )
        with self._connect() as conn:
            return [_hold(row) for row in conn.execute(query)]

    # -- leases ---------------------------------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew lease `name` unless another holder's lease is still running."""
        now = time.time()
        c = leases.c
        with self._connect(write=True) as conn:
            done = conn.execute(
                update(leases)
                .where(c.name == name, or_(c.holder == holder, c.expires_at < now))
                .values(holder=holder, expires_at=now + seconds)
            )
        if done.rowcount:
            return True
        try:
            with self._connect(write=True) as conn:
                conn.execute(
                    leases.insert().values(name=name, holder=holder, expires_at=now + seconds)
                )
        except IntegrityError:
            return False
        return True

    def release_lease(self, name: str, holder: str) -> None:
        with self._connect(write=True) as conn:
            conn.execute(
                update(leases)
                .where(leases.c.name == name, leases.c.holder == holder)
                .values(expires_at=0.0)
            )

    # -- data-subject erasure ---------------------------------------------------------------------
    def erase_subject(self, end_user: str, tag: str, now: float) -> tuple[int, int]:
        """In one transaction: destroy the subject's data keys (their subject becomes `tag`) and
        tombstone their records. Returns (records, keys). Bumps `keys` so every process drops
        cached data keys."""
        t, d = audit_records.c, data_keys.c
        with self._connect(write=True) as conn:
            mine = t.end_user == end_user
            calls = _call_ids(conn.execute(select(t.call_id, t.events).where(mine)))
            _drop_links(conn, calls, mine)  # before the tombstones clear `end_user`
            records = conn.execute(
                update(audit_records)
                .where(t.end_user == end_user)
                .values({**TOMBSTONE, "tombstoned_at": now, "tombstone_reason": "erasure"})
            ).rowcount
            keys = conn.execute(
                update(data_keys)
                .where(d.subject == end_user)
                .values(wrapped=None, destroyed_at=func.coalesce(d.destroyed_at, now), subject=tag)
            ).rowcount
            # Released holds on the user would keep their id in clear.
            conn.execute(
                update(legal_holds)
                .where(
                    legal_holds.c.scope == "user",
                    legal_holds.c.value == end_user,
                    legal_holds.c.released_at.is_not(None),
                )
                .values(value=tag)
            )
            self._bump(conn, "keys")
        self.changed("keys")
        return int(records), int(keys)

    def reclaim_space(self) -> bool:
        """Make deleted bytes go: truncate SQLite's WAL (old page images), or VACUUM on
        PostgreSQL. False if SQLite readers kept part of the WAL alive."""
        if self.engine.dialect.name == "postgresql":
            try:
                with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    # data_keys is small: FULL rewrites it, so destroyed wrapped keys leave the
                    # table's files; audit_records is only vacuumed (FULL would lock it).
                    conn.execute(text("VACUUM FULL data_keys"))
                    conn.execute(text("VACUUM audit_records"))
            except SQLAlchemyError as exc:
                raise StoreError(f"VACUUM failed: {describe_error(exc)}") from None
            return True
        for _ in range(CHECKPOINT_TRIES):
            with self._connect() as conn:
                busy = conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).first()
            if busy is not None and not busy[0]:
                return True
            time.sleep(0.1)
        return False

    # -- master-key rotation ----------------------------------------------------------------------
    def keys_not_wrapped_by(self, master_key_ids: Sequence[str], limit: int) -> list[WrappedKey]:
        """Live wrapped keys (data keys, then named secrets) under any other master key."""
        d, w = data_keys.c, wrapped_secrets.c
        with self._connect() as conn:
            found = [
                WrappedKey("data_keys", row.id, row.wrapped, row.master_key_id)
                for row in conn.execute(
                    select(d.id, d.wrapped, d.master_key_id)
                    .where(d.wrapped.is_not(None), d.master_key_id.not_in(master_key_ids))
                    .limit(limit)
                )
            ]
            if len(found) < limit:
                found += [
                    WrappedKey("wrapped_secrets", row.name, row.wrapped, row.master_key_id)
                    for row in conn.execute(
                        select(w.name, w.wrapped, w.master_key_id)
                        .where(w.master_key_id.not_in(master_key_ids))
                        .limit(limit - len(found))
                    )
                ]
        return found

    def rewrap(self, batch: Sequence[tuple[WrappedKey, bytes]], master_key_id: str) -> int:
        """Replace wrapped keys in one transaction, each unless it changed meanwhile (destroyed
        or re-wrapped elsewhere); how many were replaced."""
        done = 0
        with self._connect(write=True) as conn:
            for table, name_column in (
                (data_keys, data_keys.c.id),
                (wrapped_secrets, wrapped_secrets.c.name),
            ):
                rows = [
                    {"_name": k.name, "_old_id": k.master_key_id, "_old": k.wrapped, "_new": w}
                    for k, w in batch
                    if k.table == table.name
                ]
                if rows:
                    done += conn.execute(
                        update(table)
                        .where(
                            name_column == bindparam("_name"),
                            table.c.master_key_id == bindparam("_old_id"),
                            table.c.wrapped == bindparam("_old"),
                        )
                        .values(wrapped=bindparam("_new"), master_key_id=master_key_id),
                        rows,
                    ).rowcount
        return done

    def count_wrapped_by(self) -> dict[str, int]:
        """How many live wrapped keys each master key id wraps."""
        counts: dict[str, int] = {}
        d, w = data_keys.c, wrapped_secrets.c
        with self._connect() as conn:
            for row in conn.execute(
                select(d.master_key_id, func.count())
                .where(d.wrapped.is_not(None))
                .group_by(d.master_key_id)
            ):
                counts[row[0]] = counts.get(row[0], 0) + int(row[1])
            for row in conn.execute(
                select(w.master_key_id, func.count()).group_by(w.master_key_id)
            ):
                counts[row[0]] = counts.get(row[0], 0) + int(row[1])
        return counts


def _fields(hold: LegalHold) -> dict[str, Any]:
    return {name: getattr(hold, name) for name in LegalHold.__dataclass_fields__}


__all__ = ["HOLD_SCOPES", "Cutoffs", "LegalHold", "LifecycleQueries", "LifecycleStore"]


def _drop_links(conn: Connection, calls: list[str], records: ColumnElement[bool]) -> None:
    """Remove the call-id rows of the tool events held in `records` that are tombstoned (or,
    inside an erasure, about to be): the table is found by its call_id index, it has no other."""
    t, links = audit_records.c, tool_call_links.c
    holders = select(t.id).where(records)
    for start in range(0, len(calls), 500):  # bound parameters per statement
        part = calls[start : start + 500]
        conn.execute(
            delete(tool_call_links).where(links.call_id.in_(part), links.record_id.in_(holders))
        )


def _call_ids(rows: Any) -> list[str]:
    """The call ids of tool events among records (call_id, events): their own or those held."""
    found = set()
    for call_id, events in rows:
        if call_id:
            found.add(call_id)
        for event in orjson.loads(events) if events else ():
            if event.get("call_id"):
                found.add(event["call_id"])
    return sorted(found)
