"""The overview: what `GET /api/overview` answers the viewer, drawn as charts, with the
integrity status of `GET /api/audit/checkpoints` for roles that may read it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from signalvault.control.api import overview_routes
from signalvault.control.traffic import PERIODS
from signalvault.dashboard.charts import timeline
from signalvault.dashboard.render import page
from signalvault.dashboard.viewer import look

DONE = {"password": "Your password is changed."}


async def overview(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/overview")
    period = request.query_params.get("period", "24h")
    if period not in PERIODS:
        period = "24h"
    stats = await viewer.call(overview_routes.get_overview, period=period)
    integrity = None
    if viewer.may_globally("integrity.read"):
        integrity = await viewer.call(overview_routes.list_checkpoints, cursor=None, limit=1)
    return page(
        request,
        "overview.html",
        viewer,
        stats=stats.model_dump(),
        chart=timeline([p.model_dump() for p in stats.series], stats.bucket_seconds),
        periods=list(PERIODS),
        integrity=integrity,
        done=DONE.get(request.query_params.get("done", "")),
    )


routes = [Route("/", overview, methods=["GET"])]
