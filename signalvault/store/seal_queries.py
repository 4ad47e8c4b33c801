"""Queries of sealing and verification (leases, unsealed records, seq assignment, checkpoints),
on a caller's connection so the sealer runs them in one transaction. SQLAlchemy Core only: the
same code serves SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import operator
import os
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from signalvault.store.schema import audit_records, checkpoints, leases, state

SEALER_LEASE = "sealer"
# A `state` row: how many records, from the last checkpoint's tree size on, a seal has numbered
# without inserting their checkpoint yet (a seal in progress, or one that stopped); 0: none.
NUMBERED = "sealer.numbered"
_t = audit_records.c
COLUMN_INDEX = {str(c.name): i for i, c in enumerate(audit_records.c)}

# A record's seal is set only if its row is still exactly as the sealer read it: every column
# but the seal's own is compared (IS: NULLs equal), so a record completed, tombstoned or changed
# in any way since it was read matches no row and the batch is prepared again. This replaces
# reading every row a second time inside the write transaction (SQLite's write lock).
# (`id` by equality: PostgreSQL uses no index for IS NOT DISTINCT FROM.)
_COMPARED = tuple(c for c in audit_records.c if c.name not in ("id", "seq", "leaf_hash"))
_SEQ_AT, _LEAF_AT = len(audit_records.c), len(audit_records.c) + 1  # appended to each row
ASSIGN_SEAL = (
    update(audit_records)
    .where(
        and_(
            _t.id == bindparam("was_id"),
            _t.seq.is_(None),
            *(c.is_not_distinct_from(bindparam(f"was_{c.name}")) for c in _COMPARED),
        )
    )
    .values(seq=bindparam("seq"), leaf_hash=bindparam("leaf_hash"))
)
_SOURCE = {
    "seq": _SEQ_AT,
    "leaf_hash": _LEAF_AT,
    "was_id": COLUMN_INDEX["id"],
    **{f"was_{c.name}": COLUMN_INDEX[str(c.name)] for c in _COMPARED},
}


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


def keep_lease(conn: Connection, name: str, holder: str, until: float) -> bool:
    """Renew lease `name` only if `holder` still holds it (expired or not): False once another
    holder took it over, even if that one has let it expire since."""
    kept = conn.execute(
        update(leases)
        .where(and_(leases.c.name == name, leases.c.holder == holder))
        .values(expires_at=until)
    )
    return bool(kept.rowcount)


def mark_numbered(conn: Connection, count: int) -> None:
    """Record (in the seal's transaction) that `count` records beyond the head are numbered."""
    changed = conn.execute(update(state).where(state.c.name == NUMBERED).values(value=count))
    if not changed.rowcount:
        conn.execute(state.insert().values(name=NUMBERED, value=count))


def numbered_count(conn: Connection) -> int:
    value = conn.execute(select(state.c.value).where(state.c.name == NUMBERED)).scalar()
    return int(value or 0)


def release_numbered(conn: Connection, size: int) -> int:
    """Unseal records numbered beyond the tree of `size` leaves (a seal that stopped between its
    steps): they are sealed again like any unsealed record."""
    released = conn.execute(
        update(audit_records).where(_t.seq >= size).values(seq=None, leaf_hash=None)
    ).rowcount
    conn.execute(update(state).where(state.c.name == NUMBERED).values(value=0))
    return int(released)


@contextlib.contextmanager
def unsynced_commits(conn: Connection) -> Iterator[None]:
    """SQLite: the commits of `conn` inside the block skip their fsync (synchronous=NORMAL),
    which then runs on the WAL file after the block, when no transaction holds the write lock
    any more: the time a seal step makes request commits wait no longer includes it. A crash
    before that fsync loses only unsynced frames at the end of the WAL. A no-op on PostgreSQL."""
    if conn.dialect.name != "sqlite":
        yield
        return
    cursor = conn.connection.cursor()  # the driver's: SQLAlchemy would begin a transaction
    try:
        level = cursor.execute("PRAGMA synchronous").fetchone()[0]
        cursor.execute("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            cursor.execute(f"PRAGMA synchronous={int(level)}")
    finally:
        cursor.close()
    _sync_wal(str(conn.engine.url.database or ""))


def _sync_wal(database: str) -> None:
    if not database or database == ":memory:":
        return
    try:
        fd = os.open(f"{database}-wal", os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def may_take_lease(conn: Connection, name: str, holder: str, now: float) -> bool:
    """Whether `take_lease` could succeed now (a read only: the take itself decides)."""
    row = conn.execute(
        select(leases.c.holder, leases.c.expires_at).where(leases.c.name == name)
    ).first()
    return row is None or row.holder == holder or row.expires_at < now


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


def unsealed_rows(
    conn: Connection, ids: Sequence[str], *, lock: bool = False
) -> list[tuple[Any, ...]]:
    """Those of `ids` still unsealed, as driver tuples in table column order, in (created_at, id)
    order; with `lock`, locked against a concurrent change in PostgreSQL until the transaction
    ends. Read through the driver: SQLAlchemy's per-row processing cost more than the query."""
    if not ids:
        return []
    query = select(audit_records).where(_t.id.in_(ids))
    sql, params = _driver_statement(conn, query.with_for_update() if lock else query)
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    # `seq IS NULL` is checked here, not in SQL: SQLite would scan the seq index's NULLs.
    seq_at, created_at, id_at = COLUMN_INDEX["seq"], COLUMN_INDEX["created_at"], COLUMN_INDEX["id"]
    fresh = [tuple(row) for row in rows if row[seq_at] is None]
    return sorted(fresh, key=lambda row: (row[created_at], row[id_at]))


class SealAssigner:
    """Sets seals with `ASSIGN_SEAL`, compiled once per dialect: compiling its 40 conditions
    took ~3 ms, inside the write transaction, on every call."""

    def __init__(self) -> None:
        self._sql: dict[str, tuple[str, tuple[str, ...] | None, Any]] = {}

    def __call__(
        self, conn: Connection, rows: Sequence[tuple[Any, ...]], seals: Sequence[tuple[int, bytes]]
    ) -> bool:
        """Set seq and leaf_hash (`seals`, one per row) of the records `rows` (driver tuples in
        table column order, as `unsealed_rows` returns them) if each is unsealed and unchanged
        since it was read; False if any was sealed, removed or changed meanwhile (the caller
        rolls back). One driver executemany (SQLAlchemy's per-row bind processing was most of
        a seal's time under the write lock)."""
        found = self._sql.get(conn.dialect.name)
        if found is None:
            sql, names = _driver_sql(conn, ASSIGN_SEAL)
            sources = names if names is not None else tuple(_SOURCE)
            found = (sql, names, operator.itemgetter(*(_SOURCE[name] for name in sources)))
            self._sql[conn.dialect.name] = found
        sql, names, pick = found
        params: list[Any] = [pick((*row, *seal)) for row, seal in zip(rows, seals, strict=True)]
        if names is None:  # named parameters (psycopg)
            keys = tuple(_SOURCE)
            params = [dict(zip(keys, values, strict=True)) for values in params]
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(sql, params)
            # Both drivers sum executemany's row counts (tests check it): a count they did not
            # know (-1) would hide a change, so it fails too.
            return cursor.rowcount == len(params)
        finally:
            cursor.close()


def _driver_sql(conn: Connection, statement: Any) -> tuple[str, tuple[str, ...] | None]:
    """`statement` as SQL for the connection's driver, and its parameter order if positional."""
    compiled = statement.compile(dialect=conn.dialect)
    return str(compiled), tuple(compiled.positiontup) if compiled.positional else None


def _driver_statement(conn: Connection, statement: Any) -> tuple[str, Any]:
    """`statement` as SQL for the driver with its bound values (IN lists expanded)."""
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    values = compiled.params
    if compiled.positional:
        return str(compiled), tuple(values[name] for name in compiled.positiontup)
    return str(compiled), values


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
