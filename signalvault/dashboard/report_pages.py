"""The SOC 2 evidence report: a period chosen on the page, the report built by the API's own
route (`GET /api/reports/soc2`: same permission, signed and recorded in the trail like the CLI's
`signalvault report soc2`) as a job the page follows, then its summary, provider register and
data classes, and the signed JSON and the self-contained HTML page to download — both of the one
report the page shows."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from signalvault.control.api import report_routes
from signalvault.dashboard.jobs import Job, Jobs, Progress
from signalvault.dashboard.render import page
from signalvault.dashboard.viewer import Viewer, field, look, read_form
from signalvault.errors import NotFound
from signalvault.evidence.report.html import render_html
from signalvault.trail.export.query import parse_moment

REPORT = ("GET", "/api/reports/soc2")
KIND = "soc2_report"
MAX_MOMENT = 64
CLASSES_EVIDENCE = "Records by data class"  # the C1.1 evidence that counts records per class


async def report_form(request: Request) -> Response:
    viewer = await look(request, *REPORT)
    return page(request, "report.html", viewer, job=None, since="30d", until="")


async def generate(request: Request) -> Response:
    form = await read_form(request)
    viewer = await look(request, *REPORT, form)
    since = (field(form, "since") or "30d")[:MAX_MOMENT]
    until = field(form, "until")
    # Refuse a time the report cannot read now (400), not in the job.
    parse_moment(since)
    if until is not None:
        parse_moment(until[:MAX_MOMENT])
    jobs: Jobs = request.app.state.jobs

    def work(progress: Progress) -> dict[str, Any]:
        answer = report_routes.soc2(
            viewer.api,
            viewer.who,
            since=since,
            until=None if until is None else until[:MAX_MOMENT],
            format="json",
        )
        found: dict[str, Any] = orjson.loads(answer.body)
        return found

    job = jobs.start(viewer.who.account_id, KIND, work)
    period = urlencode({"since": since, "until": until or ""})
    return RedirectResponse(f"/report/{job.id}?{period}", status_code=303)


async def report(request: Request) -> Response:
    viewer, job = await _job(request)
    done = job.result if job.is_finished and job.error is None else None
    return page(
        request,
        "report.html",
        viewer,
        job=job,
        report=done,
        classes=None if done is None else _classes(done),
        since=request.query_params.get("since", "30d")[:MAX_MOMENT],
        until=request.query_params.get("until", "")[:MAX_MOMENT],
    )


async def download(request: Request) -> Response:
    """The report the page shows, as the signed JSON or the self-contained HTML page."""
    _, job = await _job(request)
    if not job.is_finished or job.error is not None:
        raise NotFound("this report is not ready")
    found: dict[str, Any] = job.result
    end = str(found.get("period", {}).get("to") or "")[:10] or "period"
    kind = request.path_params["format"]
    if kind not in ("json", "html"):
        raise NotFound("reports download as report.json or report.html")
    if kind == "json":
        body = orjson.dumps(found, option=orjson.OPT_INDENT_2)
        media, name = "application/json", f"soc2-report-{end}.json"
    else:
        body = render_html(found).encode()
        media, name = "text/html; charset=utf-8", f"soc2-report-{end}.html"
    return Response(
        body, media_type=media, headers={"content-disposition": f'attachment; filename="{name}"'}
    )


async def _job(request: Request) -> tuple[Viewer, Job]:
    viewer = await look(request, *REPORT)
    jobs: Jobs = request.app.state.jobs
    job = jobs.get(request.path_params["job_id"][:32], viewer.who.account_id)
    if job is None or job.kind != KIND:
        raise NotFound(
            "no such report (reports are kept for an hour by the process that made them)"
        )
    return viewer, job


def _classes(report: dict[str, Any]) -> list[list[Any]]:
    """Records per data class in the period, as the report's C1.1 evidence counts them."""
    for criterion in report.get("criteria", []):
        for evidence in criterion.get("evidence", []):
            if evidence.get("title") == CLASSES_EVIDENCE:
                table = evidence.get("table") or {}
                rows: list[list[Any]] = table.get("rows", []) if isinstance(table, dict) else []
                return rows
    return []


routes = [
    Route("/report", report_form, methods=["GET"]),
    Route("/report", generate, methods=["POST"]),
    Route("/report/{job_id}", report, methods=["GET"]),
    Route("/report/{job_id}/report.{format:str}", download, methods=["GET"]),
]
