"""Audit records: filtered, paginated metadata for everyone allowed, content for a few (audited)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from signalvault.control.accounts.principal import Principal
from signalvault.control.api import authz
from signalvault.control.api.content_classes import require_class
from signalvault.control.api.deps import Context, context, principal
from signalvault.control.api.trail_models import LogDetail, LogPage, LogRecord
from signalvault.errors import CryptoError, NotFound
from signalvault.store import RecordFilter, Store
from signalvault.store.sql import Within
from signalvault.trail.export.query import parse_moment
from signalvault.trail.record_json import record_json

router = APIRouter(tags=["logs"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]
SCAN_BATCH = 200
# Rows one page request may read while skipping records the caller may not see (few: SQL already
# narrows to the caller's projects and keys); a short page then carries a cursor to continue from.
MAX_SCAN = 5000
CONTENT_READ = "content_read"


def own_key_ids(store: Store, who: Principal) -> frozenset[str]:
    """Ids of the keys the principal created (only needed where its role is own-only)."""
    if not any(role in authz.OWN_ONLY_ROLES for role in who.roles.values()):
        return frozenset()
    return frozenset(k.id for k in store.list_keys() if k.created_by == who.actor)


def _narrowed(who: Principal, where: RecordFilter, own: frozenset[str]) -> RecordFilter:
    return replace(where, within=narrowed_within(who, own))


def narrowed_within(who: Principal, own: frozenset[str]) -> Within | None:
    """Have SQL skip what the principal can never see. Without a global role that reads every
    project, it sees only projects where its role does, and records of its own keys (where its
    role is own-only): a superset of what `authz.may_read_record` admits, checked per row after.
    None: no narrowing."""
    global_role = who.roles.get(None)
    if authz.role_allows(who, "logs.read", None) and global_role not in authz.OWN_ONLY_ROLES:
        return None
    projects = frozenset(
        project
        for project, role in who.roles.items()
        if project is not None
        and role in authz.PERMISSION_ROLES["logs.read"]
        and role not in authz.OWN_ONLY_ROLES
    )
    return Within(projects=projects, key_ids=own)


@router.get("/api/logs", response_model=LogPage)
def list_logs(
    api: Ctx,
    who: Who,
    project: str | None = None,
    key_id: str | None = None,
    end_user: str | None = None,
    model: str | None = None,
    outcome: str | None = None,
    classification: Annotated[
        str | None, Query(description="public, internal, confidential or restricted")
    ] = None,
    kind: Annotated[str | None, Query(description="interaction, or an event's kind")] = None,
    since: Annotated[str | None, Query(description="ISO-8601 time or an age like 7d")] = None,
    until: Annotated[str | None, Query(description="ISO-8601 time or an age like 1h")] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> LogPage:
    """Records newest first, only those the caller may see. Follow `next_cursor` until null (a
    page can be short when many records in between are not visible to the caller)."""
    where = RecordFilter(
        key_id=key_id,
        end_user=end_user,
        model=model,
        outcome=outcome,
        project=project,
        classification=classification,
        kind=kind,
        since=None if since is None else parse_moment(since),
        until=None if until is None else parse_moment(until),
        before_id=cursor,
    )
    own = own_key_ids(api.store, who)
    where = _narrowed(who, where, own)
    found: list[dict[str, Any]] = []
    scanned = 0
    position = cursor
    while scanned < MAX_SCAN:
        batch = api.store.list_records(replace(where, before_id=position), limit=SCAN_BATCH)
        for row in batch:
            position = row["id"]
            scanned += 1
            if authz.may_read_record(who, row["project"], row["key_id"], own):
                found.append(row)
                if len(found) == limit:
                    return _page(found, position)
        if len(batch) < SCAN_BATCH:
            return _page(found, None)
    return _page(found, position)


def _page(rows: list[dict[str, Any]], next_cursor: str | None) -> LogPage:
    return LogPage(data=[LogRecord(**record_json(row)) for row in rows], next_cursor=next_cursor)


@router.get("/api/logs/{record_id}", response_model=LogDetail)
def get_log(
    record_id: str,
    api: Ctx,
    who: Who,
    content: Annotated[bool, Query(description="Decrypted prompt and response (audited)")] = False,
) -> LogDetail:
    """One record's metadata; with `content=true` also its decrypted prompt and response, for
    roles that may read content. Each such read is recorded in the trail before it is answered."""
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
    api.trail.record_event(CONTENT_READ, who.actor, {"record": record_id}, project=row["project"])
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
