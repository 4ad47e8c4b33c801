"""Incidents (SPEC §7c): list, read, acknowledge and resolve with a note. Reading and changing
incidents needs the permission globally: an incident can span projects (a storm, the trail)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from signalvault.control.accounts.principal import Principal
from signalvault.control.api import authz
from signalvault.control.api.deps import Context, context, principal
from signalvault.control.api.models import RequestBody
from signalvault.errors import StoreUnavailable
from signalvault.evidence.incidents import MAX_NOTE, IncidentBook, response_times
from signalvault.trail.export.query import parse_moment

router = APIRouter(tags=["incidents"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]


class IncidentOut(BaseModel):
    id: str
    kind: str
    scope: str
    severity: str
    status: str = Field(description="open, acknowledged or resolved")
    first_seen: str
    last_seen: str
    count: int = Field(description="Alerts that opened or joined it")
    summary: dict[str, Any] = Field(description="The latest alert's metadata (never content)")
    acknowledged_at: str | None
    acknowledged_by: str | None
    ack_note: str | None
    resolved_at: str | None
    resolved_by: str | None
    resolution_note: str | None
    seconds_to_acknowledge: float | None
    seconds_to_resolve: float | None
    record_ids: list[str] = Field(description="Linked audit records (detail only)")


class IncidentPage(BaseModel):
    data: list[IncidentOut]
    next_cursor: str | None = None
    response_times: dict[str, Any]


class IncidentNote(RequestBody):
    note: str = Field(default="", max_length=MAX_NOTE)


def _book(api: Context) -> IncidentBook:
    if api.incidents is None:
        raise StoreUnavailable("incidents are not available")
    return api.incidents


@router.get("/api/incidents", response_model=IncidentPage)
def list_incidents(
    api: Ctx,
    who: Who,
    status: Annotated[str | None, Query(description="open, acknowledged or resolved")] = None,
    kind: str | None = None,
    since: Annotated[str | None, Query(description="First seen at or after (ISO or 7d)")] = None,
    until: Annotated[str | None, Query(description="First seen before (ISO or 1h)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> IncidentPage:
    """Incidents, newest first, with the median and worst times to acknowledge and resolve."""
    authz.require(who, "incidents.read", None)
    found = _book(api).list(
        status=status,
        kind=kind,
        since=None if since is None else parse_moment(since),
        until=None if until is None else parse_moment(until),
        limit=limit,
    )
    return IncidentPage(
        data=[IncidentOut(**i.as_json()) for i in found], response_times=response_times(found)
    )


@router.get("/api/incidents/{incident_id}", response_model=IncidentOut)
def get_incident(incident_id: str, api: Ctx, who: Who) -> IncidentOut:
    authz.require(who, "incidents.read", None)
    return IncidentOut(**_book(api).get(incident_id).as_json())


@router.post("/api/incidents/{incident_id}/ack", response_model=IncidentOut)
def acknowledge(incident_id: str, body: IncidentNote, api: Ctx, who: Who) -> IncidentOut:
    """Acknowledge an open incident (audited with the note)."""
    authz.require(who, "incidents.write", None)
    return IncidentOut(**_book(api).acknowledge(incident_id, who.actor, body.note).as_json())


@router.post("/api/incidents/{incident_id}/resolve", response_model=IncidentOut)
def resolve(incident_id: str, body: IncidentNote, api: Ctx, who: Who) -> IncidentOut:
    """Resolve an incident; the note (required) says what was done. Audited."""
    authz.require(who, "incidents.write", None)
    return IncidentOut(**_book(api).resolve(incident_id, who.actor, body.note).as_json())
