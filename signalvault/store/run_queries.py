"""Agent runs in the audit trail (SPEC §7b): tool events by call id, run counters, run listings
and one run's records. Reads only; the trail writes the records. Used by signalvault.agents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Engine, and_, case, func, or_, select

from signalvault.store.record_queries import Readable
from signalvault.store.schema import audit_records, tool_call_links
from signalvault.store.sql import connect

# MCP calls refused at the door (the tool not allowed, the run past its limit) were not tool calls.
MCP_NOT_ADMITTED = ("tool_not_allowed", "run_limit_exceeded")


def tool_events(
    engine: Engine, project: str | None, call_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """Tool calls and results with these call ids in one project, oldest first: `id` is the
    event's, as in the record that holds it (or the event's own record, before migration 0013).
    A call's `answered` tells whether a result answering it was recorded: a `tool_result` row
    of that call id (a result answering no known call, a call of another run, or any result
    before 2026-12-07), else a result held in a record of the call's run (those get no row).

    Runs on the request path (a result answering a call this process did not record), through
    the table's one index, on call id; the project only filters what it finds (compared through
    coalesce so that "no project" matches itself).
    """
    t = tool_call_links.c
    query = select(
        t.event_id.label("id"), t.kind, t.run_id, t.created_at, t.tool_name, t.call_id
    ).where(
        t.call_id.in_(list(call_ids)),
        func.coalesce(t.project, "") == (project or ""),  # no project is named ""
    )
    with connect(engine) as conn:
        found = [dict(row._mapping) for row in conn.execute(query)]
        with_rows = {row["call_id"] for row in found if row["kind"] == "tool_result"}
        open_calls: dict[str, list[dict[str, Any]]] = {}  # by run
        for row in found:
            if row["kind"] == "tool_call":
                row["answered"] = row["call_id"] in with_rows
                if not row["answered"] and row["run_id"]:
                    open_calls.setdefault(row["run_id"], []).append(row)
        for run_id, calls in open_calls.items():
            answered = _answered_in_run(conn, project, run_id, calls)
            for row in calls:
                row["answered"] = row["call_id"] in answered
    return sorted(found, key=lambda row: row["created_at"])


# How far before a call a record answering it may seem to be made: another replica's clock.
CLOCK_SKEW_SECONDS = 60.0


def _answered_in_run(
    conn: Connection, project: str | None, run_id: str, calls: list[dict[str, Any]]
) -> set[str]:
    """The call ids of `calls` (tool_call rows of one run) that a result held in a record of the
    run answers: the run's records from the earliest call on (the run index's range), those whose
    events name one of the ids returned (a LIKE on the JSON the trail writes, compared in the
    database). Only a process that did not see the call asks, and a result usually follows its
    call within a few records of the run, so the range is short while a loop runs; a call left
    unanswered in a long run costs a read of the run's later records."""
    t = audit_records.c
    ids = {row["call_id"] for row in calls}
    named = [t.events.like(_json_member_pattern("call_id", c), escape="\\") for c in ids]
    query = select(t.events).where(
        t.run_id == run_id,
        t.created_at >= min(row["created_at"] for row in calls) - CLOCK_SKEW_SECONDS,
        func.coalesce(t.project, "") == (project or ""),
        t.events.is_not(None),
        or_(*named),
    )
    answered: set[str] = set()
    for (events,) in conn.execute(query):
        for entry in orjson.loads(events):
            # A result of a refused request never reached the model: its outcome is not "ok".
            if (
                entry.get("type") == "tool_result"
                and entry.get("outcome") == "ok"
                and entry.get("call_id") in ids
            ):
                answered.add(entry["call_id"])
    return answered


def _json_member_pattern(name: str, value: str) -> str:
    """A LIKE pattern matching `"name":value` in compact JSON (as orjson writes it)."""
    member = f'"{name}":' + orjson.dumps(value).decode()
    escaped = member.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def has_link(engine: Engine, call_id: str, event_id: str) -> bool:
    """Whether the call-id row of this event is stored (a spool replayed twice)."""
    t = tool_call_links.c
    query = select(t.event_id).where(t.call_id == call_id, t.event_id == event_id).limit(1)
    with connect(engine) as conn:
        return conn.execute(query).first() is not None


def run_counts(engine: Engine, run_id: str) -> tuple[int, int]:
    """(model calls, tool calls) recorded in a run so far. A tool call is one the model asked
    for, or an MCP `tools/call` admitted through the gateway that carries out none of those."""
    t = audit_records.c
    direct_mcp = and_(
        t.kind == "mcp_call",
        t.tool_name.is_not(None),
        t.parent_id.is_(None),
        or_(t.error_code.is_(None), t.error_code.not_in(MCP_NOT_ADMITTED)),
    )
    query = select(
        func.coalesce(func.sum(case((t.kind == "interaction", 1), else_=0)), 0),
        func.coalesce(func.sum(_tool_calls(direct_mcp)), 0),
    ).where(t.run_id == run_id)
    with connect(engine) as conn:
        row = conn.execute(query).one()
    return int(row[0]), int(row[1])


def _tool_calls(*more: ColumnElement[bool]) -> Any:
    """A record's tool calls: the ones it holds, or 1 for a tool_call record of its own (written
    before migration 0013) and for each condition in `more` it meets."""
    t = audit_records.c
    whens = [(t.kind == "tool_call", 1), *((condition, 1) for condition in more)]
    return case(*whens, else_=func.coalesce(t.tool_calls, 0))


def latest_tool_call(engine: Engine, run_id: str, tool_name: str, scan: int = 500) -> str | None:
    """The id of the run's latest tool call of this tool, if any among its `scan` latest
    records holding tool calls (this runs only when memory has none, e.g. after a restart)."""
    t = audit_records.c
    query = (
        select(t.id, t.kind, t.tool_name, t.events)
        .where(t.run_id == run_id, or_(t.kind == "tool_call", t.tool_calls.is_not(None)))
        .order_by(t.created_at.desc())
        .limit(scan)
    )
    with connect(engine) as conn:
        for row in conn.execute(query):
            if row.kind == "tool_call":
                if row.tool_name == tool_name:
                    return str(row.id)
                continue
            for event in reversed(orjson.loads(row.events or "[]")):
                if event["type"] == "tool_call" and event.get("tool_name") == tool_name:
                    return str(event["id"])
    return None


def run_of_trace(engine: Engine, project: str | None, trace_id: str) -> str | None:
    """The run a record of this trace (in this project) joined, if any: a trace seen first
    under a session belongs to the session's run."""
    t = audit_records.c
    same_project = t.project.is_(None) if project is None else t.project == project
    query = (
        select(t.run_id)
        .where(t.trace_id == trace_id, same_project, t.run_id.is_not(None))
        .order_by(t.created_at)
        .limit(1)
    )
    with connect(engine) as conn:
        found = conn.execute(query).scalar()
    return None if found is None else str(found)


@dataclass(frozen=True, slots=True)
class RunFilter:
    session: str | None = None
    end_user: str | None = None
    project: str | None = None
    before: tuple[float, str] | None = None  # cursor: runs that started before (time, id)
    started_since: float | None = None  # runs that started at or after (epoch seconds)
    started_until: float | None = None  # runs that started before
    # Only records this reader may see (None: no narrowing), as SQL.
    readable: Readable | None = None


def list_runs(engine: Engine, where: RunFilter, limit: int) -> list[dict[str, Any]]:
    """Runs newest first: id, session, trace, end user, project, key, start, end, counts."""
    t = audit_records.c
    conditions: list[ColumnElement[bool]] = [t.run_id.is_not(None), t.tombstoned_at.is_(None)]
    if where.session is not None:
        conditions.append(t.session_id == where.session)
    if where.end_user is not None:
        conditions.append(t.end_user == where.end_user)
    if where.project is not None:
        conditions.append(t.project == where.project)
    if where.readable is not None:
        conditions.append(where.readable.condition())
    started = func.min(t.created_at)
    query = (
        select(
            t.run_id.label("id"),
            func.max(t.session_id).label("session"),
            func.max(t.trace_id).label("trace_id"),
            func.max(t.end_user).label("end_user"),
            func.max(t.project).label("project"),
            func.max(t.key_id).label("key_id"),
            started.label("started_at"),
            func.max(func.coalesce(t.completed_at, t.created_at)).label("ended_at"),
            func.sum(case((t.kind == "interaction", 1), else_=0)).label("model_calls"),
            func.sum(_tool_calls()).label("tool_calls"),
            func.sum(case((_blocked(), 1), else_=0)).label("blocked"),
            func.sum(case((t.outcome.in_(("ok", "unknown")), 0), else_=1)).label("failed"),
            func.sum(case((t.outcome == "unknown", 1), else_=0)).label("open"),
            func.sum(case((_flagged(), 1), else_=0)).label("flagged"),
        )
        .where(and_(*conditions))
        .group_by(t.run_id)
    )
    if where.before is not None:
        at, run_id = where.before
        query = query.having(or_(started < at, and_(started == at, t.run_id < run_id)))
    if where.started_since is not None:
        query = query.having(started >= where.started_since)
    if where.started_until is not None:
        query = query.having(started < where.started_until)
    query = query.order_by(started.desc(), t.run_id.desc()).limit(limit)
    with connect(engine) as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def _blocked() -> ColumnElement[bool]:
    """A record blocked, or holding a tool call or result that was."""
    t = audit_records.c
    return or_(t.outcome == "blocked", t.events.like('%"outcome":"blocked"%'))


def _flagged() -> ColumnElement[bool]:
    """A record capture flagged (a result answering no call it saw) or whose guardrails logged or
    redacted something without blocking, or holding such an event, as the compact JSON the
    trail writes says."""
    t = audit_records.c
    return or_(
        t.details.like('%"flags":[%'),
        t.guardrails.like('%"outcome":"logged"%'),
        t.guardrails.like('%"outcome":"redacted"%'),
        t.events.like('%"flags":[%'),
        t.events.like('%"outcome":"logged"%'),
        t.events.like('%"outcome":"redacted"%'),
    )


def run_records(engine: Engine, run_id: str, limit: int) -> list[dict[str, Any]]:
    """A run's records (ciphertext included), oldest first."""
    t = audit_records.c
    query = (
        select(audit_records).where(t.run_id == run_id).order_by(t.created_at, t.id).limit(limit)
    )
    with connect(engine) as conn:
        return [dict(row._mapping) for row in conn.execute(query)]
