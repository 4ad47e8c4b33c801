"""Agent runs: the runs `GET /api/traces` lists for the viewer (the same access rule through
`trace_routes.visible_runs`, filtered by project and start time, paged by its cursor), one run as
`GET /api/traces/{id}` answers it, drawn as a tree, and its tool arguments and results only
through a posted reveal that the API records (with the reason given) before they are shown."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from signalvault.agents.runs import UNANSWERED, run_detail
from signalvault.control.api import log_routes, trace_routes
from signalvault.dashboard.render import page
from signalvault.dashboard.viewer import Viewer, field, look, query_filters, read_form

FILTERS = ("project", "since", "until")
PAGE_SIZE = 50
MAX_FILTER = 64  # the API's bound on times; project names are shorter
MAX_ID = 100


async def runs(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/traces")
    filters = query_filters(request, FILTERS, MAX_FILTER)
    cursor = request.query_params.get("cursor") or None
    where = trace_routes.run_filter(
        None,
        None,
        filters.get("project"),
        filters.get("since"),
        filters.get("until"),
        None if cursor is None else cursor[:200],
    )
    found, next_cursor = await viewer.call(trace_routes.visible_runs, where=where, limit=PAGE_SIZE)
    next_url = None
    if next_cursor is not None:
        next_url = "/runs?" + urlencode({**filters, "cursor": next_cursor})
    return page(
        request,
        "runs.html",
        viewer,
        runs=[{**r, "took": _took(r), "ended_utc": _utc(r["ended_at"])} for r in found],
        filters=filters,
        next_url=next_url,
        is_first_page=cursor is None,
    )


async def run(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/traces/{run_id}")
    run_id = request.path_params["run_id"][:MAX_ID]
    rows = await viewer.call(trace_routes.visible_run_rows, run_id=run_id)
    return _run_page(request, viewer, rows, revealed=None)


async def reveal(request: Request) -> Response:
    """Tool arguments and results: a posted action (CSRF-checked) that the API records before
    it answers; refused as the API refuses roles that may not read content."""
    form = await read_form(request)
    viewer = await look(request, "GET", "/api/traces/{run_id}", form)
    run_id = request.path_params["run_id"][:MAX_ID]
    reason = field(form, "reason")
    detail = await viewer.call(
        trace_routes.get_trace,
        run_id,
        content=True,
        reason=None if reason is None else reason[: log_routes.MAX_REASON],
    )
    rows = await viewer.call(trace_routes.visible_run_rows, run_id=run_id)
    return _run_page(request, viewer, rows, revealed={e.id: e for e in detail.events})


def _took(run: dict[str, Any]) -> float | None:
    """Seconds from the run's first record to its last."""
    try:
        start = dt.datetime.fromisoformat(str(run["started_at"]).replace("Z", "+00:00"))
        end = dt.datetime.fromisoformat(str(run["ended_at"]).replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (end - start).total_seconds())


def _utc(moment: str | None) -> str:
    return "" if not moment else moment[:19].replace("T", " ") + " UTC"


def _run_page(
    request: Request, viewer: Viewer, rows: list[dict[str, Any]], revealed: dict[str, Any] | None
) -> Response:
    detail = run_detail(rows)
    projects = {row["project"] for row in rows}
    has_content = any(e["has_content"] for e in detail["events"] if _is_tool(e))
    return page(
        request,
        "run.html",
        viewer,
        run=detail,
        project=rows[0]["project"],
        key_id=next((r["key_id"] for r in rows if r["key_id"]), None),
        counts=_counts(detail["events"]),
        revealed=revealed,
        has_content=has_content,
        may_read_content=all(viewer.may_in("logs.content", p) for p in projects),
        unanswered=UNANSWERED,
    )


def _is_tool(event: dict[str, Any]) -> bool:
    return event["type"] in ("tool_call", "tool_result")


def _counts(events: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "blocked": sum(1 for e in events if e["outcome"] == "blocked"),
        "flagged": sum(1 for e in events if e["flags"]),
        "fired": sum(1 for e in events if any(g.get("outcome") != "pass" for g in e["guardrails"])),
    }


routes = [
    Route("/runs", runs, methods=["GET"]),
    Route("/runs/{run_id}", run, methods=["GET"]),
    Route("/runs/{run_id}/content", reveal, methods=["POST"]),
]
