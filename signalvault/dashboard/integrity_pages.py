"""Integrity: where the tamper evidence stands and the signed checkpoints (`GET
/api/audit/checkpoints`), and a whole-trail verification (`POST /api/audit/verify`, recorded)
run as a job whose progress the page shows."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from signalvault.control.api import overview_routes, trail_routes
from signalvault.dashboard.jobs import Jobs, Progress
from signalvault.dashboard.render import page
from signalvault.dashboard.viewer import look, read_form
from signalvault.errors import NotFound

VERIFY = ("POST", "/api/audit/verify")


async def integrity(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/audit/checkpoints")
    text = request.query_params.get("cursor", "")
    cursor = int(text) if text.isdigit() and 0 < int(text) <= 2**62 else None
    status = await viewer.call(overview_routes.list_checkpoints, cursor=cursor, limit=50)
    return page(request, "integrity.html", viewer, status=status, job=None)


async def start_verification(request: Request) -> Response:
    form = await read_form(request)
    viewer = await look(request, *VERIFY, form)
    jobs: Jobs = request.app.state.jobs

    def work(progress: Progress) -> object:
        return trail_routes.run_verification(
            viewer.api, viewer.who, via="dashboard", progress=progress
        )

    job = jobs.start(viewer.who.account_id, "verify", work)
    return RedirectResponse(f"/integrity/verify/{job.id}", status_code=303)


async def verification(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/audit/checkpoints")
    jobs: Jobs = request.app.state.jobs
    job = jobs.get(request.path_params["job_id"][:32], viewer.who.account_id)
    if job is None:
        raise NotFound(
            "no such verification (jobs are kept for an hour by the process that ran them)"
        )
    return page(request, "verification.html", viewer, job=job)


routes = [
    Route("/integrity", integrity, methods=["GET"]),
    Route("/integrity/verify", start_verification, methods=["POST"]),
    Route("/integrity/verify/{job_id}", verification, methods=["GET"]),
]
