"""Agent runs (SPEC §7b): runs as `signalvault traces list` shows them, and one run's events.

Metadata for every role that reads logs (developers: runs of their own keys); tool arguments and
results only with `?content=true`, for roles that may read content, each such read recorded in
the trail before it is answered (as /api/logs/{id}?content=true).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from signalvault.agents.runs import (
    event_content,
    parse_cursor,
    run_detail,
    run_rows,
    runs_page,
)
from signalvault.control.accounts.principal import Principal
from signalvault.control.api import authz
from signalvault.control.api.deps import Context, context, principal
from signalvault.control.api.log_routes import CONTENT_READ, MAX_REASON
from signalvault.control.api.visibility import own_key_ids, readable
from signalvault.crypto.envelope import Cipher
from signalvault.errors import BadRequest, ConfigError, CryptoError, NotFound
from signalvault.store.run_queries import RunFilter
from signalvault.trail.export.query import parse_moment

router = APIRouter(tags=["traces"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]
MAX_PAGES = 25  # pages of runs one request reads while skipping runs the caller may not see


class TraceSummary(BaseModel):
    id: str
    session: str | None
    trace_id: str | None
    end_user: str | None
    started_at: str | None
    ended_at: str | None
    model_calls: int
    tool_calls: int
    outcome: str


class TracePage(BaseModel):
    data: list[TraceSummary]
    next_cursor: str | None


class TraceEvent(BaseModel):
    id: str
    type: str
    at: str | None
    parent_id: str | None
    record_id: str
    depth: int
    call_id: str | None
    tool_name: str | None
    model: str | None
    outcome: str | None
    flags: list[str]
    guardrails: list[dict[str, Any]]
    details: dict[str, Any]
    has_content: bool
    mcp: dict[str, Any] | None = Field(
        default=None,
        description="mcp_call events: `http_status`, `jsonrpc_error`, `is_error`, `error_code`.",
    )
    content: str | None = Field(default=None, description="Only with ?content=true.")
    content_erased: bool | None = None


class TraceDetail(TraceSummary):
    events: list[TraceEvent]


@router.get("/api/traces", response_model=TracePage)
def list_traces(
    api: Ctx,
    who: Who,
    session: str | None = None,
    end_user: str | None = None,
    project: str | None = None,
    since: Annotated[
        str | None, Query(max_length=64, description="Started at or after (ISO or 7d)")
    ] = None,
    until: Annotated[
        str | None, Query(max_length=64, description="Started before (ISO or 1h)")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> TracePage:
    """Runs newest first, only those the caller may see; follow `next_cursor` until null."""
    where = run_filter(session, end_user, project, since, until, cursor)
    runs, next_cursor = visible_runs(api, who, where, limit)
    return TracePage(data=[TraceSummary(**run) for run in runs], next_cursor=next_cursor)


def run_filter(
    session: str | None,
    end_user: str | None,
    project: str | None,
    since: str | None,
    until: str | None,
    cursor: str | None,
) -> RunFilter:
    """The listing's query parameters as a filter.

    Raises:
        BadRequest: a cursor or time this listing cannot read.
    """
    try:
        before = None if cursor is None else parse_cursor(cursor)
    except ValueError:
        raise BadRequest("not a cursor from this listing", param="cursor") from None
    return RunFilter(
        session=session,
        end_user=end_user,
        project=project,
        before=before,
        started_since=None if since is None else _moment(since, "since"),
        started_until=None if until is None else _moment(until, "until"),
    )


def visible_runs(
    api: Context, who: Principal, where: RunFilter, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to `limit` runs the caller may see (as `runs_page` gives them: with project, key,
    blocked and flagged counts) and the cursor that continues after them (None: no more). The
    API answers their SPEC shape; the dashboard shows them whole."""
    own = own_key_ids(api.store, who)
    where = replace(where, readable=readable(who, own))
    found: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        page = runs_page(api.store, where, limit)
        for run in page.runs:
            if authz.may_read_record(who, run["project"], run["key_id"], own):
                found.append(run)
                if len(found) == limit:
                    return found, run["cursor"]
        if page.next_cursor is None:
            return found, None
        where = replace(where, before=parse_cursor(page.next_cursor))
    # Many runs in between were not the caller's: a short page, and where to go on from.
    return found, page.next_cursor


def _moment(text: str, param: str) -> float:
    try:
        return parse_moment(text)
    except ConfigError as bad:
        raise BadRequest(str(bad), param=param) from None


@router.get("/api/traces/{run_id}", response_model=TraceDetail)
def get_trace(
    run_id: str,
    api: Ctx,
    who: Who,
    content: Annotated[
        bool, Query(description="Decrypted tool arguments and results (audited)")
    ] = False,
    reason: Annotated[
        str | None,
        Query(max_length=MAX_REASON, description="Why the content is read (kept with the read)"),
    ] = None,
) -> TraceDetail:
    """One run with its events in time order, each after the event it answers; with
    `content=true` also the tool calls' arguments and the results, recorded as a content read
    (with `reason` when one is given)."""
    rows = visible_run_rows(api, who, run_id)
    detail = TraceDetail(**run_detail(rows))
    if not content:
        return detail
    readable = [row for row in rows if row["kind"] in ("tool_call", "tool_result")]
    for project in {row["project"] for row in readable}:
        authz.require(who, "logs.content", project)
    # Fail closed: if the trail cannot take the read, no content is returned.
    # The records read: a tool call or result held in a model call's record is read from it.
    records = list(dict.fromkeys(row.get("record_id", row["id"]) for row in readable))
    read: dict[str, Any] = {"run": run_id, "records": records}
    if reason is not None and reason.strip():
        read["reason"] = reason.strip()
    api.trail.record_event(CONTENT_READ, who.actor, read, project=rows[0]["project"])
    by_id = {row["id"]: row for row in readable}
    keys: dict[str, Cipher] = {}
    for event in detail.events:
        row = by_id.get(event.id)
        if row is None:
            continue
        try:
            event.content = event_content(api.trail, row, keys)
            event.content_erased = False
        except CryptoError:
            event.content_erased = True
    return detail


def visible_run_rows(api: Context, who: Principal, run_id: str) -> list[dict[str, Any]]:
    """The run's records the caller may see, oldest first (ciphertext included: callers decide
    what to show).

    Raises:
        NotFound: no such run, or none of it is the caller's.
    """
    own = own_key_ids(api.store, who)
    rows = [
        row
        for row in run_rows(api.store, run_id)
        if authz.may_read_record(who, row["project"], row["key_id"], own)
    ]
    if not rows:
        raise NotFound("no such run")
    return rows
