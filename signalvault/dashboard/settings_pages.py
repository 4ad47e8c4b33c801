"""Settings and alerts: the effective configuration with each value's source (`GET
/api/settings`: secrets only as set or not), run-time overrides (`PATCH /api/settings`,
validated and audited there), and the alert settings with the recent blocked requests."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from signalvault.config.sections import ALERT_KINDS
from signalvault.control.api import log_routes, settings_routes
from signalvault.dashboard.render import page
from signalvault.dashboard.viewer import field, look, raw, read_form
from signalvault.errors import BadRequest

DONE = {"changed": "Setting changed in every gateway process, from its next use."}
ALERT_EVENTS = "alerts.events"


def value_of(text: str) -> Any:
    """A typed value as JSON (60, true, ["a"], null to reset), else the text itself."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


async def settings(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/settings")
    view = await viewer.call(settings_routes.get_settings)
    return page(
        request,
        "settings.html",
        viewer,
        settings=view.data,
        runtime=view.runtime_settings,
        done=DONE.get(request.query_params.get("done", "")),
    )


async def change(request: Request) -> Response:
    form = await read_form(request)
    viewer = await look(request, "PATCH", "/api/settings", form)
    name = field(form, "name")
    if name is None:
        raise BadRequest("choose a setting")
    if name == ALERT_EVENTS and field(form, "value") is None:
        value: Any = [kind for kind in ALERT_KINDS if field(form, f"event_{kind}") == "on"]
    else:
        value = value_of(raw(form, "value").strip())
    await viewer.call(settings_routes.patch_settings, {name: value})
    back = "/alerts" if name == ALERT_EVENTS else "/settings"
    return RedirectResponse(f"{back}?done=changed", status_code=303)


async def alerts(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/settings")
    view = await viewer.call(settings_routes.get_settings)
    entries = {s.name: s for s in view.data if s.name.startswith("alerts.")}
    events = entries.get(ALERT_EVENTS)
    recent = await viewer.call(log_routes.list_logs, outcome="blocked", limit=20)
    return page(
        request,
        "alerts.html",
        viewer,
        entries=sorted(entries.values(), key=lambda s: s.name),
        enabled=set(events.value or ()) if events is not None else set(),
        kinds=ALERT_KINDS,
        recent=recent.data,
        done=DONE.get(request.query_params.get("done", "")),
    )


routes = [
    Route("/settings", settings, methods=["GET"]),
    Route("/settings", change, methods=["POST"]),
    Route("/alerts", alerts, methods=["GET"]),
]
