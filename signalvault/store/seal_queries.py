"""Queries of sealing and verification (leases, unsealed records, seq assignment, checkpoints),
on a caller's connection so the sealer runs them in one transaction. SQLAlchemy Core only: the
same code serves SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from signalvault.store.schema import audit_records, checkpoints, leases

SEALER_LEASE = "sealer"
_t = audit_records.c
COLUMN_INDEX = {str(c.name): i for i, c in enumerate(audit_records.c)}

ASSIGN_SEAL = (
    update(audit_records)
    .where(and_(_t.id == bindparam("_id"), _t.seq.is_(None)))
    .values(seq=bindparam("seq"), leaf_hash=bindparam("leaf_hash"))
)


def take_lease(conn: Connection, name: str, holder: str, now: float, until: float) -> bool:
    """Take or renew lease `name` for `holder` unless another holder's lease is still running.

    The conditional UPDATE is the first write of the caller's transaction, so concurrent callers
    serialise on it (row lock in PostgreSQL, the write lock in SQLite).
    """
    taken = conn.execute(
        update(leases)
        .where(
            and_(
                leases.c.name == name,
                or_(leases.c.holder == holder, leases.c.expires_at < now),
            )
        )
        .values(holder=holder, expires_at=until)
    )
    if taken.rowcount:
        return True
    if conn.execute(select(leases.c.name).where(leases.c.name == name)).first() is not None:
        return False
    try:
        with conn.begin_nested():
            conn.execute(leases.insert().values(name=name, holder=holder, expires_at=until))
    except IntegrityError:  # another process inserted it first
        return False
    return True


def release_lease(conn: Connection, name: str, holder: str) -> None:
    conn.execute(
        update(leases)
        .where(and_(leases.c.name == name, leases.c.holder == holder))
        .values(expires_at=0.0)
    )


def last_checkpoint(conn: Connection) -> Any:
    """The newest checkpoint row, or None before the first seal."""
    return conn.execute(
        select(checkpoints).order_by(checkpoints.c.tree_size.desc()).limit(1)
    ).first()


def sealable_ids(conn: Connection, stale_before: float, limit: int) -> list[str]:
    """Ids of unsealed records that can no longer change (a final outcome, or in flight for
    longer than any request lasts), oldest first."""
    query = (
        select(_t.id)
        .where(
            and_(
                _t.seq.is_(None),
                or_(_t.outcome != "unknown", _t.created_at < stale_before),
            )
        )
        .order_by(_t.created_at, _t.id)
        .limit(limit)
    )
    return [row.id for row in conn.execute(query)]


def unsealed_records(conn: Connection, ids: Sequence[str]) -> list[Any]:
    """Those of `ids` still unsealed, whole rows in (created_at, id) order, locked against a
    concurrent change in PostgreSQL until the transaction ends."""
    if not ids:
        return []
    # `seq IS NULL` is checked here, not in SQL: SQLite would scan the seq index's NULLs.
    query = select(audit_records).where(_t.id.in_(ids)).with_for_update()
    rows = [row for row in conn.execute(query) if row.seq is None]
    return sorted(rows, key=lambda row: (row.created_at, row.id))


def assign_seals(conn: Connection, seals: Sequence[dict[str, Any]]) -> bool:
    """Set seq and leaf_hash of unsealed records ({_id, seq, leaf_hash}); False if any record was
    sealed or removed meanwhile (where the driver reports executemany row counts)."""
    result = conn.execute(ASSIGN_SEAL, list(seals))
    if conn.dialect.supports_sane_multi_rowcount:
        return result.rowcount == len(seals)
    return True


def insert_checkpoint(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(checkpoints.insert().values(**values))


def _fetch_raw(engine: Engine, statement: Any) -> list[tuple[Any, ...]]:
    """Rows as the driver returns them: verifying a million records spends most of its time
    here, and SQLAlchemy's per-row result processing would double it. The statement's values
    are rendered inline, so callers pass only integers they computed."""
    sql = str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            cursor.execute(sql)
            return list(cursor.fetchall())
        finally:
            cursor.close()
    finally:
        raw.close()


def sealed_records(engine: Engine, below: int, batch: int = 5000) -> Iterator[tuple[Any, ...]]:
    """Sealed records with seq < `below` as tuples in table column order, by (seq, id), in
    keyset-paginated batches (bounded memory, no long read transaction). Duplicated seqs (only
    possible if the unique index was dropped) are all returned."""
    seq_at, id_at = COLUMN_INDEX["seq"], COLUMN_INDEX["id"]
    last_seq, last_id = -1, ""
    while True:
        page = (
            select(audit_records)
            .where(and_(_t.seq >= int(last_seq), _t.seq < int(below)))
            .order_by(_t.seq, _t.id)
            .limit(int(batch))
        )
        rows = _fetch_raw(engine, page)
        fresh = [r for r in rows if r[seq_at] > last_seq or r[id_at] > last_id]
        yield from fresh
        if len(rows) < batch:
            return
        if not fresh:  # more than `batch` rows share one seq: step past them
            last_seq, last_id = last_seq + 1, ""
            continue
        last_seq, last_id = fresh[-1][seq_at], fresh[-1][id_at]


def all_checkpoints(engine: Engine, batch: int = 2000) -> Iterator[Any]:
    """Every checkpoint by tree size, in keyset-paginated batches."""
    after = -1
    while True:
        with engine.connect() as conn:
            rows = list(
                conn.execute(
                    select(checkpoints)
                    .where(checkpoints.c.tree_size > after)
                    .order_by(checkpoints.c.tree_size)
                    .limit(batch)
                )
            )
        yield from rows
        if len(rows) < batch:
            return
        after = rows[-1].tree_size


def records_at_or_above(conn: Connection, seq: int, limit: int) -> list[Any]:
    """Records carrying a seq the checkpoints do not cover (first `limit` by seq)."""
    return list(
        conn.execute(
            select(_t.id, _t.seq).where(_t.seq >= seq).order_by(_t.seq, _t.id).limit(limit)
        )
    )


def count_sealed(conn: Connection, below: int) -> int:
    return int(conn.execute(select(func.count()).where(_t.seq < below)).scalar() or 0)


def unsealed_summary(
    conn: Connection, suspicious_before: float, limit: int
) -> tuple[int, list[Any]]:
    """(count of unsealed records, the first `limit` unsealed ones created before
    `suspicious_before`: id, created_at, outcome)."""
    count = conn.execute(select(func.count()).where(_t.seq.is_(None))).scalar()
    old = conn.execute(
        select(_t.id, _t.created_at, _t.outcome)
        .where(and_(_t.seq.is_(None), _t.created_at < suspicious_before))
        .order_by(_t.created_at, _t.id)
        .limit(limit)
    )
    return int(count or 0), list(old)


def count_unsealed_before(conn: Connection, before: float) -> int:
    return int(
        conn.execute(
            select(func.count()).where(and_(_t.seq.is_(None), _t.created_at < before))
        ).scalar()
        or 0
    )


def recent_checkpoints(engine: Engine, before: int | None, limit: int) -> list[Any]:
    """Checkpoints newest first (tree size, root, time, signing key), below tree size `before`."""
    c = checkpoints.c
    query = select(c.tree_size, c.root_hash, c.created_at, c.signing_key_id, c.body)
    if before is not None:
        query = query.where(c.tree_size < before)
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(c.tree_size.desc()).limit(limit)))
