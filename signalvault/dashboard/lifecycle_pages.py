"""Retention and legal holds (`/api/retention`, `/api/legal-holds`), and data subjects: a
subject's export (`GET /api/subjects/{user}`, streamed, recorded) and erasure (`DELETE
/api/subjects/{user}`) behind a confirmation the server checks (the user id typed again)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from signalvault.control.api import lifecycle_routes, trail_routes
from signalvault.control.api.trail_models import LegalHoldCreate, RetentionUpdate
from signalvault.dashboard.render import page
from signalvault.dashboard.viewer import field, look, read_form
from signalvault.errors import BadRequest, Forbidden

DONE = {
    "retention": "Retention changed.",
    "hold": "Legal hold placed: retention and erasure skip what it covers.",
    "released": "Legal hold released.",
}
MAX_USER = 256


async def retention(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/retention")
    policy = await viewer.call(lifecycle_routes.get_retention)
    holds = await viewer.call(lifecycle_routes.list_holds, include_released=True)
    return page(
        request,
        "retention.html",
        viewer,
        policy=policy,
        holds=holds.data,
        done=DONE.get(request.query_params.get("done", "")),
    )


def _days(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise BadRequest("days must be a whole number (0 keeps forever)")
    return int(value)


async def set_retention(request: Request) -> Response:
    form = await read_form(request)
    viewer = await look(request, "PUT", "/api/retention", form)
    project = field(form, "project")
    days = _days(field(form, "days"))
    if project is None:
        if days is None:
            raise BadRequest("give the number of days")
        body = RetentionUpdate(default_days=days)
    else:
        body = RetentionUpdate(projects={project: days})
    await viewer.call(lifecycle_routes.put_retention, body)
    return RedirectResponse("/retention?done=retention", status_code=303)


async def add_hold(request: Request) -> Response:
    form = await read_form(request)
    viewer = await look(request, "POST", "/api/legal-holds", form)
    body = LegalHoldCreate(
        scope=field(form, "scope") or "",  # type: ignore[arg-type]
        value=field(form, "value") or "",
        reason=field(form, "reason"),
    )
    await viewer.call(lifecycle_routes.create_hold, body)
    return RedirectResponse("/retention?done=hold", status_code=303)


async def release_hold(request: Request) -> Response:
    form = await read_form(request)
    viewer = await look(request, "DELETE", "/api/legal-holds/{hold_id}", form)
    await viewer.call(lifecycle_routes.delete_hold, request.path_params["hold_id"][:64])
    return RedirectResponse("/retention?done=released", status_code=303)


async def subjects(request: Request) -> Response:
    try:
        viewer = await look(request, "GET", "/api/subjects/{user}")
    except Forbidden:  # erasing without exporting (admins)
        viewer = await look(request, "DELETE", "/api/subjects/{user}")
    return page(request, "subjects.html", viewer, receipt=None, error=None)


async def export_subject(request: Request) -> Response:
    """Streams everything about one end user (content included), recorded before it starts."""
    form = await read_form(request)
    viewer = await look(request, "GET", "/api/subjects/{user}", form)
    user = (field(form, "user") or "")[:MAX_USER]
    if not user:
        raise BadRequest("give the end user id")
    fmt = "jsonl" if field(form, "format") == "jsonl" else "json"
    return await viewer.call(trail_routes.export_subject, user=user, format=fmt)


async def erase_subject(request: Request) -> Response:
    form = await read_form(request)
    viewer = await look(request, "DELETE", "/api/subjects/{user}", form)
    user = (field(form, "user") or "")[:MAX_USER]
    if not user:
        raise BadRequest("give the end user id")
    if field(form, "confirm") != user:
        return page(
            request,
            "subjects.html",
            viewer,
            status_code=400,
            receipt=None,
            error="Type the end user id exactly into the confirmation field to erase it.",
        )
    receipt = await viewer.call(trail_routes.erase, user=user)
    return page(request, "subjects.html", viewer, receipt=receipt, error=None)


routes = [
    Route("/retention", retention, methods=["GET"]),
    Route("/retention", set_retention, methods=["POST"]),
    Route("/retention/holds", add_hold, methods=["POST"]),
    Route("/retention/holds/{hold_id}/release", release_hold, methods=["POST"]),
    Route("/subjects", subjects, methods=["GET"]),
    Route("/subjects/export", export_subject, methods=["POST"]),
    Route("/subjects/erase", erase_subject, methods=["POST"]),
]
