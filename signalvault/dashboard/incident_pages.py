"""Incidents: the list `GET /api/incidents` answers (filtered by status, kind and first seen,
with the times to acknowledge and resolve), one incident with its linked records, and the
acknowledge and resolve forms that do what `POST /api/incidents/{id}/ack|resolve` do (same
permission, same audited change, CSRF-checked)."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from signalvault.control.api import incident_routes
from signalvault.dashboard.render import page
from signalvault.dashboard.viewer import field, look, read_form
from signalvault.evidence.incidents import MAX_NOTE, STATUSES

FILTERS = ("status", "kind", "since", "until")
MAX_FILTER = 64
MAX_ID = 64
PAGE_SIZE = 200  # the API lists at most 500, newest first, without a cursor
DONE = {"acknowledged": "Incident acknowledged.", "resolved": "Incident resolved."}


def filters_of(request: Request) -> dict[str, str]:
    found = {}
    for name in FILTERS:
        value = request.query_params.get(name, "").strip()
        if value:
            found[name] = value[:MAX_FILTER]
    if found.get("status") not in (None, *STATUSES):
        del found["status"]
    return found


async def incidents(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/incidents")
    filters = filters_of(request)
    listing = await viewer.call(
        incident_routes.list_incidents,
        status=filters.get("status"),
        kind=filters.get("kind"),
        since=filters.get("since"),
        until=filters.get("until"),
        limit=PAGE_SIZE,
    )
    return page(
        request,
        "incidents.html",
        viewer,
        incidents=listing.data,
        times=listing.response_times,
        filters=filters,
        statuses=STATUSES,
        is_full=len(listing.data) == PAGE_SIZE,
        query=urlencode(filters),
    )


async def incident(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/incidents/{incident_id}")
    found = await viewer.call(
        incident_routes.get_incident, request.path_params["incident_id"][:MAX_ID]
    )
    return page(
        request,
        "incident.html",
        viewer,
        incident=found,
        may_act=viewer.may_globally("incidents.write"),
        done=DONE.get(request.query_params.get("done", "")),
        max_note=MAX_NOTE,
    )


async def acknowledge(request: Request) -> Response:
    form = await read_form(request)
    viewer = await look(request, "POST", "/api/incidents/{incident_id}/ack", form)
    incident_id = request.path_params["incident_id"][:MAX_ID]
    note = incident_routes.IncidentNote(note=field(form, "note") or "")
    await viewer.call(incident_routes.acknowledge, incident_id, note)
    return RedirectResponse(f"/incidents/{incident_id}?done=acknowledged", status_code=303)


async def resolve(request: Request) -> Response:
    form = await read_form(request)
    viewer = await look(request, "POST", "/api/incidents/{incident_id}/resolve", form)
    incident_id = request.path_params["incident_id"][:MAX_ID]
    note = incident_routes.IncidentNote(note=field(form, "note") or "")
    await viewer.call(incident_routes.resolve, incident_id, note)
    return RedirectResponse(f"/incidents/{incident_id}?done=resolved", status_code=303)


routes = [
    Route("/incidents", incidents, methods=["GET"]),
    Route("/incidents/{incident_id}", incident, methods=["GET"]),
    Route("/incidents/{incident_id}/ack", acknowledge, methods=["POST"]),
    Route("/incidents/{incident_id}/resolve", resolve, methods=["POST"]),
]
