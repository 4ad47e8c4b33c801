"""Logs: the records `GET /api/logs` lists for the viewer (same filters, same cursor), a record's
metadata as `GET /api/logs/{id}` answers it, and its content only through an explicit, posted
action that the API records (with the reason given) before the content is shown."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from signalvault.agents.runs import run_detail
from signalvault.config import CLASSES
from signalvault.control.api import log_routes, trace_routes
from signalvault.control.api.trail_models import LogDetail
from signalvault.dashboard.render import page
from signalvault.dashboard.viewer import Viewer, field, look, query_filters, read_form
from signalvault.errors import NotFound
from signalvault.trail.audit import OUTCOMES

FILTERS = (
    "since",
    "until",
    "project",
    "key_id",
    "end_user",
    "model",
    "outcome",
    "rule",
    "classification",
    "kind",
)
KINDS = ("interaction", "mcp_call", "span", "admin", "content_read")  # tool events: in runs
PAGE_SIZE = 50
TOOL_EVENTS = ("tool_call", "tool_result", "span", "mcp_call")
MAX_FILTER = 200  # longer values are not names, ids or times: refused like the API's limits


async def logs(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/logs")
    filters = query_filters(request, FILTERS, MAX_FILTER, {"classification": CLASSES})
    cursor = request.query_params.get("cursor") or None
    listing = await viewer.call(
        log_routes.list_logs,
        cursor=None if cursor is None else cursor[:100],
        limit=PAGE_SIZE,
        **{name: filters.get(name) for name in FILTERS},
    )
    next_url = None
    if listing.next_cursor is not None:
        next_url = "/logs?" + urlencode({**filters, "cursor": listing.next_cursor})
    return page(
        request,
        "logs.html",
        viewer,
        records=listing.data,
        filters=filters,
        next_url=next_url,
        is_first_page=cursor is None,
        outcomes=OUTCOMES,
        classes=CLASSES,
        kinds=KINDS,
    )


async def record(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/logs/{record_id}")
    found = await viewer.call(
        log_routes.get_log, request.path_params["record_id"][:100], content=False
    )
    return await _record_page(request, viewer, found, revealed=False)


async def reveal(request: Request) -> Response:
    """Decrypted content: a posted action (CSRF-checked), recorded by the API before it answers."""
    form = await read_form(request)
    viewer = await look(request, "GET", "/api/logs/{record_id}", form)
    reason = field(form, "reason")
    found = await viewer.call(
        log_routes.get_log,
        request.path_params["record_id"][:100],
        content=True,
        reason=None if reason is None else reason[: log_routes.MAX_REASON],
    )
    return await _record_page(request, viewer, found, revealed=True)


async def _run_tools(viewer: Viewer, run_id: str | None) -> list[dict[str, Any]]:
    """The tool calls and results of the record's run this viewer may see (metadata only), as
    the run's page shows them."""
    if run_id is None:
        return []
    try:
        rows = await viewer.call(trace_routes.visible_run_rows, run_id=run_id)
    except NotFound:
        return []
    return [e for e in run_detail(rows)["events"] if e["type"] in TOOL_EVENTS]


async def _record_page(
    request: Request, viewer: Viewer, found: LogDetail, revealed: bool
) -> Response:
    fired: list[dict[str, Any]] = [e for e in found.guardrails if e.get("outcome") != "pass"]
    return page(
        request,
        "record.html",
        viewer,
        record=found,
        fired=fired,
        revealed=revealed,
        may_read_content=viewer.may_in("logs.content", found.project),
        run_tools=await _run_tools(viewer, found.run_id),
    )


routes = [
    Route("/logs", logs, methods=["GET"]),
    Route("/logs/{record_id}", record, methods=["GET"]),
    Route("/logs/{record_id}/content", reveal, methods=["POST"]),
]
