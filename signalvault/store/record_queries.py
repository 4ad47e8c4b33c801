"""Listing audit records: the filters (`RecordFilter`), which records a reader may see
(`Readable`), and the keyset-paginated queries, newest first by (created_at, id) so that each
filter's (column, created_at) index serves it in order (migration 0011)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from sqlalchemy import ColumnElement, Connection, and_, false, func, or_, select, true, tuple_

from signalvault.store.mixin import StoreMixin
from signalvault.store.schema import audit_records


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """Filters for listing audit records; None means any."""

    key_id: str | None = None
    end_user: str | None = None
    model: str | None = None
    outcome: str | None = None
    project: str | None = None
    since: float | None = None
    until: float | None = None
    before_id: str | None = None  # cursor: records listed after this one (older)
    # Only records this reader may see (None: no narrowing), as SQL, so a reader who may see
    # little of the trail has SQL skip the rest instead of reading past it.
    readable: Readable | None = None
    classification: str | None = None
    kinds: tuple[str, ...] | None = None  # record kinds (interaction, admin, login, ...)
    # A prefilter on the stored JSON: records whose guardrail evaluations name this rule. The
    # caller checks that the rule fired (`outcome` not `pass`) on the parsed evaluations.
    rule: str | None = None
    # Window: only records listed at or before this one (a bound on how far one page reads).
    floor_id: str | None = None


@dataclass(frozen=True, slots=True)
class Readable:
    """Which records a reader may see: `authz.may_read_record` as one SQL condition.

    In `projects` the reader sees every record, in `own_projects` only those of `key_ids` (the
    keys it created), in `blind_projects` none; in any other project (and for records without
    one) its global role decides: `everywhere` (all), `own_everywhere` (its keys' only), or none.
    """

    everywhere: bool = False
    own_everywhere: bool = False
    projects: frozenset[str] = frozenset()
    own_projects: frozenset[str] = frozenset()
    blind_projects: frozenset[str] = frozenset()
    key_ids: frozenset[str] = frozenset()

    def condition(self) -> ColumnElement[bool]:
        t = audit_records.c
        own = t.key_id.in_(sorted(self.key_ids))
        named = sorted(self.projects | self.own_projects | self.blind_projects)
        global_rule: ColumnElement[bool] = (
            true() if self.everywhere else own if self.own_everywhere else false()
        )
        elsewhere = or_(t.project.is_(None), t.project.not_in(named)) if named else true()
        return or_(
            false(),
            t.project.in_(sorted(self.projects)),
            and_(t.project.in_(sorted(self.own_projects)), own),
            and_(elsewhere, global_rule),
        )


class RecordSelection(Protocol):
    """The metadata filters shared by listings and exports; None means any."""

    @property
    def key_id(self) -> str | None: ...
    @property
    def end_user(self) -> str | None: ...
    @property
    def model(self) -> str | None: ...
    @property
    def outcome(self) -> str | None: ...
    @property
    def project(self) -> str | None: ...
    @property
    def since(self) -> float | None: ...
    @property
    def until(self) -> float | None: ...
    @property
    def classification(self) -> str | None: ...


def record_conditions(where: RecordSelection) -> list[ColumnElement[bool]]:
    """SQL conditions for the filters that are set (time range `since` <= t < `until`)."""
    t = audit_records.c
    conditions: list[ColumnElement[bool]] = []
    for column, value in (
        (t.key_id, where.key_id),
        (t.end_user, where.end_user),
        (t.outcome, where.outcome),
        (t.project, where.project),
        (t.classification, where.classification),
    ):
        if value is not None:
            conditions.append(column == value)
    if where.model is not None:
        conditions.append((t.model_requested == where.model) | (t.model_used == where.model))
    if where.since is not None:
        conditions.append(t.created_at >= where.since)
    if where.until is not None:
        conditions.append(t.created_at < where.until)
    return conditions


FIRED = ("blocked", "redacted", "logged", "error")  # every evaluation outcome but `pass`


def _like(text: str) -> str:
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def rule_prefilter(rule: str) -> ColumnElement[bool]:
    """Records whose stored guardrail JSON has an evaluation of `rule` followed by an outcome
    other than `pass`, as Interaction.guardrails_json writes evaluations (compact orjson, `rule`
    first, `outcome` after it). A superset (the outcome may belong to a later evaluation):
    callers check the parsed evaluations exactly."""
    name = _like('"rule":' + orjson.dumps(rule).decode() + ",")
    outcomes = [_like(f'"outcome":"{outcome}"') for outcome in FIRED]
    column = audit_records.c.guardrails
    return or_(*(column.like(f"%{name}%{outcome}%", escape="/") for outcome in outcomes))


class RecordQueries(StoreMixin):
    """Mixed into `SqlStore`: reads records through its connections."""

    # -- audit records --------------------------------------------------------------------------
    def list_records(self, where: RecordFilter, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first (by time, then id), metadata and ciphertext columns as stored."""
        t = audit_records.c
        with self._connect() as conn:
            query = (
                select(audit_records)
                .where(and_(True, *self._listing(conn, where)))
                .order_by(t.created_at.desc(), t.id.desc())
                .limit(limit)
            )
            return [dict(row._mapping) for row in conn.execute(query)]

    def record_at_offset(self, where: RecordFilter, offset: int) -> str | None:
        """The id of the record `offset` places further down the listing `where` gives (None:
        the listing ends before): the floor of a bounded scan (`RecordFilter.floor_id`)."""
        t = audit_records.c
        with self._connect() as conn:
            query = (
                select(t.id)
                .where(and_(True, *self._listing(conn, where)))
                .order_by(t.created_at.desc(), t.id.desc())
                .offset(offset)
                .limit(1)
            )
            found = conn.execute(query).scalar()
        return None if found is None else str(found)

    def _listing(self, conn: Connection, where: RecordFilter) -> list[ColumnElement[bool]]:
        """The conditions of a listing: filters, the reader's scope, and the keyset window
        (time then id, so the (column, created_at) indexes serve every filter in order)."""
        t = audit_records.c
        conditions = record_conditions(where)
        if where.kinds is not None:
            conditions.append(t.kind.in_(where.kinds))
        if where.rule is not None:
            conditions.append(rule_prefilter(where.rule))
        if where.readable is not None:
            conditions.append(where.readable.condition())
        if where.before_id is not None:
            conditions.append(self._keyset(conn, where.before_id, below=True))
        if where.floor_id is not None:
            conditions.append(self._keyset(conn, where.floor_id, below=False))
        return conditions

    def _keyset(self, conn: Connection, record_id: str, *, below: bool) -> ColumnElement[bool]:
        """Records listed after `record_id` (below) or up to and including it (not below)."""
        t = audit_records.c
        moment = conn.execute(select(t.created_at).where(t.id == record_id)).scalar()
        if moment is None:  # an id that is not (or no longer) stored: ids sort by time too
            return t.id < record_id if below else t.id >= record_id
        position = tuple_(t.created_at, t.id)
        return position < (moment, record_id) if below else position >= (moment, record_id)

    def get_record(self, record_id: str) -> dict[str, Any] | None:
        with self._connect() as conn:
            row = conn.execute(select(audit_records).where(audit_records.c.id == record_id)).first()
        return None if row is None else dict(row._mapping)

    def count_records(self) -> int:
        with self._connect() as conn:
            return int(conn.execute(select(func.count()).select_from(audit_records)).scalar() or 0)
