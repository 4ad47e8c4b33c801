"""The SOC 2 evidence report (SPEC §8) as JSON or as the self-contained HTML page: the same
signed model the CLI writes (`signalvault report soc2`) and the dashboard shows."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from signalvault.control.accounts.principal import Principal
from signalvault.control.api import authz
from signalvault.control.api.deps import Context, context, principal
from signalvault.errors import BadRequest, StoreUnavailable
from signalvault.evidence.report.build import build_report, default_period
from signalvault.evidence.report.html import render_html
from signalvault.evidence.report.probe import Period
from signalvault.trail.export.query import parse_moment
from signalvault.trail.signing import load_signer

router = APIRouter(tags=["reports"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]


@router.get(
    "/api/reports/soc2",
    response_model=dict[str, Any],
    responses={200: {"content": {"text/html": {}}}},
)
def soc2(
    api: Ctx,
    who: Who,
    since: Annotated[
        str | None, Query(description="Period start: ISO-8601 or an age (30d)")
    ] = None,
    until: Annotated[str | None, Query(description="Period end (exclusive); default now")] = None,
    format: Literal["json", "html"] = "json",
) -> Response:
    """The Trust Services Criteria mapped to evidence of the period (default: the last 30 days),
    signed like an export manifest; metadata only. Generating it is recorded in the trail."""
    authz.require(who, "reports", None)
    if api.incidents is None:
        raise StoreUnavailable("the evidence report needs the incident store")
    period = default_period()
    start = period.start if since is None else parse_moment(since)
    end = period.end if until is None else parse_moment(until)
    if start >= end:
        raise BadRequest("`since` must be earlier than `until`", param="since")
    report = build_report(
        api.store,
        api.trail,
        api.settings,
        api.incidents,
        load_signer(api.store, api.trail.master_keys),
        Period(start, end),
        who.actor,
    )
    if format == "html":
        return HTMLResponse(render_html(report))
    return JSONResponse(report)
