"""Which records an export reads: filters, time parsing, and keyset-paginated streaming by id.

Reads run over the SQL store's engine in batches, so memory stays flat whatever the trail's size.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import orjson
from sqlalchemy import ColumnElement, Connection, Select, and_, bindparam, func, select
from sqlalchemy.exc import SQLAlchemyError

from signalvault.console import iso
from signalvault.crypto.gateway_keys import parse_duration
from signalvault.errors import ConfigError, StoreError
from signalvault.store import Store
from signalvault.store.record_queries import record_conditions, rule_prefilter
from signalvault.store.schema import audit_records, data_keys
from signalvault.store.sql import SqlStore
from signalvault.store.writer import describe_error

# Rows per query: enough to amortise the round trip, few enough to keep memory flat (rows with
# content carry ciphertext and plaintext, so they come in smaller batches). 500 rather than 2000:
# a batch's rows and its ~0.8 MB of output stay in the CPU's caches and the allocator stops
# taking fresh pages from the kernel each batch (0.47 -> 0.30 page faults per record), ~10%
# less CPU per record (bench/export_speed.py store, 100k records, alternated runs).
BATCH = 500
CONTENT_BATCH = 250
PASSED = "pass"  # an evaluation with any other outcome means its rule found something
CIPHERTEXT = ("prompt_ct", "response_ct", "events_ct")
# What a metadata export reads: every column it writes. Not the ciphertext, nor the data key's id
# (only content exports use it); each column read costs about 1% of the export's time.
METADATA_COLUMNS = tuple(c for c in audit_records.c if c.name not in (*CIPHERTEXT, "data_key_id"))
HAS_CONTENT = audit_records.c.prompt_ct.is_not(None).label("has_content")
AFTER = "export_after"  # the keyset cursor's parameter: the last id of the previous batch


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """What to export; None means any. Times are epoch seconds, `until` exclusive."""

    since: float | None = None
    until: float | None = None
    project: str | None = None
    key_id: str | None = None
    end_user: str | None = None
    model: str | None = None
    outcome: str | None = None
    rule: str | None = None  # records in which this guardrail rule fired (outcome not `pass`)
    classification: str | None = None  # records of this data class (SPEC §7c)
    run_id: str | None = None  # the records of one agent run (SPEC §7b)

    def as_json(self) -> dict[str, Any]:
        """The filters that were set, as recorded in manifests and audit events."""
        values: dict[str, Any] = {
            "since": iso(self.since),
            "until": iso(self.until),
            "project": self.project,
            "key": self.key_id,
            "user": self.end_user,
            "model": self.model,
            "outcome": self.outcome,
            "rule": self.rule,
            "classification": self.classification,
            "run": self.run_id,
        }
        return {name: value for name, value in values.items() if value is not None}


def parse_moment(text: str, now: float | None = None) -> float:
    """Epoch seconds of an ISO-8601 time (UTC unless it names an offset) or an age like `7d`.

    Raises:
        ConfigError: neither form.
    """
    value = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?[smhdw]", value):
        return (time.time() if now is None else now) - parse_duration(value)
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"not a time: {text!r} (use ISO-8601 like 2026-11-01 or 2026-11-01T12:00Z, "
            "or an age like 7d, 12h)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _sql_store(store: Store) -> SqlStore:
    if not isinstance(store, SqlStore):
        raise StoreError("export needs an SQL store")
    return store


def _conditions(where: ExportFilter) -> list[ColumnElement[bool]]:
    conditions = record_conditions(where)
    if where.run_id is not None:
        conditions.append(audit_records.c.run_id == where.run_id)
    if where.rule is not None:
        # A prefilter on the JSON text; `has_rule_fired` then checks the evaluations exactly.
        conditions.append(rule_prefilter(where.rule))
    return conditions


def has_rule_fired(row: dict[str, Any], rule: str) -> bool:
    """True if one of the record's guardrail evaluations is `rule` with an outcome besides pass."""
    if not row.get("guardrails"):
        return False
    try:
        evaluations = orjson.loads(row["guardrails"])
    except orjson.JSONDecodeError:
        raise StoreError(
            f"record {row['id']}: its stored JSON metadata is damaged; export stopped"
        ) from None
    return any(e.get("rule") == rule and e.get("outcome") != PASSED for e in evaluations)


def iter_rows(
    store: Store, where: ExportFilter, *, with_content: bool, batch: int | None = None
) -> Iterator[dict[str, Any]]:
    """Matching records, oldest id first, as stored dicts (see `iter_batches`)."""
    for names, rows in iter_batches(store, where, with_content=with_content, batch=batch):
        for row in rows:
            yield dict(zip(names, row, strict=True))


def iter_batches(
    store: Store, where: ExportFilter, *, with_content: bool, batch: int | None = None
) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
    """Matching records, oldest id first, as stored: batches of driver tuples with their column
    names. Without `with_content` the ciphertext columns are not read; `has_content` says
    whether the record has any.

    Bounded by the newest id when the export starts, so records written meanwhile (including
    the export's own audit event) are left for the next export instead of chasing a live trail.

    Raises:
        StoreError: the store failed mid-way.
    """
    engine = _sql_store(store).engine
    t = audit_records.c
    batch = batch or (CONTENT_BATCH if with_content else BATCH)
    selected = list(audit_records.c) if with_content else [*METADATA_COLUMNS, HAS_CONTENT]
    conditions = _conditions(where)
    try:
        with engine.connect() as conn:
            newest = conn.execute(select(func.max(t.id))).scalar()
            if newest is None:
                return
            query = (
                select(*selected)
                .where(and_(t.id > bindparam(AFTER, type_=t.id.type), t.id <= newest, *conditions))
                .order_by(t.id)
                .limit(batch)
            )
            statement = _Statement(conn, query)  # compiled once, not per batch
            cursor = ""
            while True:
                names, rows = statement.fetch({AFTER: cursor})
                if not rows:
                    return
                id_at, fetched = names.index("id"), len(rows)
                cursor = rows[-1][id_at]
                if where.rule is not None:
                    guardrails_at = names.index("guardrails")
                    rows = [r for r in rows if _fired(r[id_at], r[guardrails_at], where.rule)]
                if rows:
                    yield names, rows
                if fetched < batch:
                    return
    except SQLAlchemyError as exc:
        raise StoreError(f"the store failed during the export: {describe_error(exc)}") from None


def _fired(record_id: str, guardrails: str | None, rule: str) -> bool:
    return has_rule_fired({"id": record_id, "guardrails": guardrails}, rule)


class _Statement:
    """A query compiled once for the driver and run straight from its cursor, with new values
    for some parameters each time: SQLAlchemy's result rows cost about as much as everything
    else an export does per record. Only plain column types are selected (booleans come back as
    0/1 from SQLite; callers apply bool())."""

    def __init__(self, conn: Connection, query: Select[Any]) -> None:
        compiled = query.compile(dialect=conn.dialect)
        self._conn = conn
        self._sql = str(compiled)
        self._params = dict(compiled.params)
        self._order = tuple(compiled.positiontup or ()) if compiled.positional else None

    def fetch(self, values: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        """(column names, rows) with these parameter values.

        Raises:
            StoreError: the driver failed.
        """
        params: Any = {**self._params, **values}
        if self._order is not None:
            params = tuple(params[name] for name in self._order)
        cursor = self._conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self._sql, params)
            names = [column[0] for column in cursor.description]
            return names, cast("list[tuple[Any, ...]]", cursor.fetchall())
        except self._conn.dialect.loaded_dbapi.Error as exc:
            raise StoreError(f"the store failed during the export: {describe_error(exc)}") from None
        finally:
            cursor.close()


def subject_data_keys(store: Store, subject: str) -> list[dict[str, Any]]:
    """The data keys of one end user: ids and status, never key material."""
    k = data_keys.c
    query = (
        select(
            k.id,
            k.master_key_id,
            k.created_at,
            k.destroyed_at,
            k.wrapped.is_(None).label("is_wiped"),
        )
        .where(k.subject == subject)
        .order_by(k.created_at)
    )
    try:
        with _sql_store(store).engine.connect() as conn:
            rows = conn.execute(query).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"the store could not list data keys: {describe_error(exc)}") from None
    return [
        {
            "id": row.id,
            "status": "destroyed" if row.destroyed_at is not None or row.is_wiped else "live",
            "created_at": iso(row.created_at),
            "destroyed_at": iso(row.destroyed_at),
            "master_key_id": row.master_key_id,
        }
        for row in rows
    ]


def live_data_keys(store: Store, key_ids: set[str]) -> set[str]:
    """Which of these data keys still exist and are not destroyed."""
    if not key_ids:
        return set()
    k = data_keys.c
    query = select(k.id).where(
        and_(k.id.in_(sorted(key_ids)), k.destroyed_at.is_(None), k.wrapped.is_not(None))
    )
    try:
        with _sql_store(store).engine.connect() as conn:
            return set(conn.execute(query).scalars())
    except SQLAlchemyError as exc:
        raise StoreError(f"the store could not read data keys: {describe_error(exc)}") from None
