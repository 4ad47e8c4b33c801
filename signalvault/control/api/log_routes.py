"""Audit records: filtered, paginated metadata for everyone allowed, content for a few (audited)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from signalvault.control.accounts.principal import Principal
from signalvault.control.api import authz
from signalvault.control.api.content_classes import require_class
from signalvault.control.api.deps import Context, context, principal
from signalvault.control.api.trail_models import LogDetail, LogPage, LogRecord
from signalvault.control.api.visibility import own_key_ids, readable
from signalvault.errors import CryptoError, NotFound
from signalvault.store import RecordFilter, Store
from signalvault.trail.export.query import has_rule_fired, parse_moment
from signalvault.trail.record_json import record_json

router = APIRouter(tags=["logs"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]
SCAN_BATCH = 200
# Rows one page request may read while skipping records it does not list (evaluations of the
# `rule` that passed, and, as a safety net, rows the per-row check refuses); a short page then
# carries a cursor to continue from, so a page costs the same whatever the trail's size.
MAX_SCAN = 5000
CONTENT_READ = "content_read"
MAX_REASON = 500
Classification = Literal["public", "internal", "confidential", "restricted"]


@router.get("/api/logs", response_model=LogPage)
def list_logs(
    api: Ctx,
    who: Who,
    project: str | None = None,
    key_id: str | None = None,
    end_user: str | None = None,
    model: str | None = None,
    outcome: str | None = None,
    classification: Classification | None = None,
    rule: Annotated[
        str | None, Query(max_length=200, description="A guardrail rule that fired")
    ] = None,
    kind: Annotated[
        str | None,
        Query(max_length=2000, description="Record kinds, comma-separated (e.g. interaction)"),
    ] = None,
    since: Annotated[str | None, Query(description="ISO-8601 time or an age like 7d")] = None,
    until: Annotated[str | None, Query(description="ISO-8601 time or an age like 1h")] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> LogPage:
    """Records newest first, only those the caller may see. Follow `next_cursor` until null (a
    page can be short, or even empty, when the records it looked through did not match)."""
    own = own_key_ids(api.store, who)
    where = RecordFilter(
        key_id=key_id,
        end_user=end_user,
        model=model,
        outcome=outcome,
        project=project,
        classification=classification,
        kinds=None if kind is None else tuple(k.strip() for k in kind.split(",") if k.strip()),
        rule=rule,
        since=None if since is None else parse_moment(since),
        until=None if until is None else parse_moment(until),
        before_id=cursor,
        readable=readable(who, own),
    )
    floor = None
    if rule is not None:
        # The rule is checked on each row's evaluations (no index can): read a bounded window.
        floor = api.store.record_at_offset(replace(where, rule=None), MAX_SCAN)
        where = replace(where, floor_id=floor)
    found: list[dict[str, Any]] = []
    scanned = 0
    position = cursor
    while scanned < MAX_SCAN:
        batch = api.store.list_records(replace(where, before_id=position), limit=SCAN_BATCH)
        for row in batch:
            position = row["id"]
            scanned += 1
            if (rule is None or has_rule_fired(row, rule)) and authz.may_read_record(
                who, row["project"], row["key_id"], own
            ):
                found.append(row)
                if len(found) == limit:
                    return _page(found, position)
        if len(batch) < SCAN_BATCH:
            return _page(found, floor)
    return _page(found, position)


def _page(rows: list[dict[str, Any]], next_cursor: str | None) -> LogPage:
    return LogPage(data=[LogRecord(**record_json(row)) for row in rows], next_cursor=next_cursor)


@router.get("/api/logs/{record_id}", response_model=LogDetail)
def get_log(
    record_id: str,
    api: Ctx,
    who: Who,
    content: Annotated[bool, Query(description="Decrypted prompt and response (audited)")] = False,
    reason: Annotated[
        str | None,
        Query(max_length=MAX_REASON, description="Why the content is read (kept with the read)"),
    ] = None,
) -> LogDetail:
    """One record's metadata; with `content=true` also its decrypted prompt and response, for
    roles that may read content. Each such read is recorded in the trail before it is answered,
    with `reason` when one is given."""
    row = api.store.get_record(record_id)
    if row is None or not authz.may_read_record(
        who, row["project"], row["key_id"], own_key_ids(api.store, who)
    ):
        raise NotFound("no such record")
    detail = LogDetail(**record_json(row))
    if not content:
        return detail
    authz.require(who, "logs.content", row["project"])
    require_class(api, who, row)
    # Fail closed: if the trail cannot take the read, the content is not returned.
    details: dict[str, Any] = {"record": record_id}
    if reason is not None and reason.strip():
        details["reason"] = reason.strip()
    api.trail.record_event(CONTENT_READ, who.actor, details, project=row["project"])
    if row.get("tombstoned_at") is not None:
        detail.content_erased = True
        return detail
    try:
        prompt, response = api.trail.decrypt(row)
    except CryptoError:
        if row.get("data_key_id") is not None and _is_key_destroyed(api.store, row):
            detail.content_erased = True
            return detail
        raise
    detail.prompt = None if prompt is None else prompt.decode("utf-8", "replace")
    detail.response = None if response is None else response.decode("utf-8", "replace")
    detail.content_erased = False
    return detail


def _is_key_destroyed(store: Store, row: dict[str, Any]) -> bool:
    found = store.get_data_key(row["data_key_id"])
    return found is None or found[0] is None
