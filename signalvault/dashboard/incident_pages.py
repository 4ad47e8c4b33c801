"""Incidents: the list `GET /api/incidents` answers (filtered by status, kind and first seen,
with the times to acknowledge and resolve), one incident with its linked records, and the
acknowledge and resolve forms that do what `POST /api/incidents/{id}/ack|resolve` do (same
permission, same audited change, CSRF-checked)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from signalvault.control.api import incident_routes
from signalvault.dashboard.render import page
from signalvault.dashboard.viewer import field, look, query_filters, read_form
from signalvault.evidence.incidents import MAX_NOTE, STATUSES

FILTERS = ("status", "kind", "since", "until")
MAX_FILTER = 64
MAX_ID = 64
PAGE_SIZE = 200  # the API lists at most 500, newest first, without a cursor
DONE = {"acknowledged": "Incident acknowledged.", "resolved": "Incident resolved."}


async def incidents(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/incidents")
    filters = query_filters(request, FILTERS, MAX_FILTER, {"status": STATUSES})
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
    return await _respond(request, "ack", incident_routes.acknowledge, "acknowledged")


async def resolve(request: Request) -> Response:
    return await _respond(request, "resolve", incident_routes.resolve, "resolved")


async def _respond(request: Request, action: str, route: Callable[..., Any], done: str) -> Response:
    """Acknowledge or resolve with the form's note, as the API's route for `action` does."""
    form = await read_form(request)
    viewer = await look(request, "POST", f"/api/incidents/{{incident_id}}/{action}", form)
    incident_id = request.path_params["incident_id"][:MAX_ID]
    note = incident_routes.IncidentNote(note=field(form, "note") or "")
    await viewer.call(route, incident_id, note)
    return RedirectResponse(f"/incidents/{incident_id}?done={done}", status_code=303)


routes = [
    Route("/incidents", incidents, methods=["GET"]),
    Route("/incidents/{incident_id}", incident, methods=["GET"]),
    Route("/incidents/{incident_id}/ack", acknowledge, methods=["POST"]),
    Route("/incidents/{incident_id}/resolve", resolve, methods=["POST"]),
]
