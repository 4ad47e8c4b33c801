"""The admin API under /api/: a FastAPI app over the gateway's services (SPEC §5).

`create_admin_api` builds it; `signalvault.app` hands it every request whose path starts with
/api/. Access is decided in `authz` (tables) and `deps.guard` (per request), deny by default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute

from signalvault import __version__
from signalvault.config import Settings
from signalvault.control.api import (
    account_routes,
    auth_routes,
    authz,
    config_routes,
    errors,
    incident_routes,
    key_routes,
    lifecycle_routes,
    log_routes,
    overview_routes,
    project_routes,
    report_routes,
    settings_routes,
    trace_routes,
    trail_routes,
)
from signalvault.control.api.deps import AccountService, Context, NoAccounts, guard, no_breakers
from signalvault.control.api.models import ErrorBody

if TYPE_CHECKING:
    from signalvault.control.services import Services

OPENAPI_PATH = "/api/openapi.json"
# Every operation may answer these, all as `{"error": {"message", "code"}}`.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "Bad input (e.g. an unparseable time)"),
        (401, "No or bad credentials"),
        (
            403,
            "The role does not allow it, the CSRF token is missing, or a one-time password "
            "must be changed first",
        ),
        (404, "No such resource, or not visible to the caller"),
        (409, "Conflicts with the current state (exists, already revoked, legal hold)"),
        (422, "The request does not match the schema"),
        (429, "Too many attempts"),
        (503, "The audit store is unavailable"),
    )
}


def create_admin_api(
    services: Services,
    settings: Settings,
    accounts: AccountService | None = None,
    breakers: Callable[[], dict[str, str]] | None = None,
) -> FastAPI:
    """The admin API over running services; without an account service it refuses everyone.
    `breakers` gives the gateway's circuit breaker states (the overview shows them)."""
    app = FastAPI(
        title="SignalVault admin API",
        version=__version__,
        openapi_url=OPENAPI_PATH,
        docs_url=None,  # no UI: it would pull scripts from a CDN
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        dependencies=[Depends(guard)],
        responses=ERROR_RESPONSES,
    )
    app.state.context = Context(
        store=services.store,
        keyring=services.keyring,
        trail=services.trail,
        settings=settings,
        accounts=accounts if accounts is not None else NoAccounts(),
        credentials=services.credentials,
        incidents=services.incidents,
        breakers=breakers or no_breakers,
    )
    for module in (
        auth_routes,
        log_routes,
        trace_routes,
        key_routes,
        trail_routes,
        lifecycle_routes,
        config_routes,
        settings_routes,
        account_routes,
        project_routes,
        incident_routes,
        report_routes,
        overview_routes,
    ):
        for route in module.router.routes:
            assert isinstance(route, APIRoute)
            _add(app, route)
    errors.install(app)
    missing = unruled_routes(app)
    if missing:  # deny by default, and loudly: a route without a rule is a bug
        raise RuntimeError(f"admin API routes without an access rule: {missing}")
    return app


def _add(app: FastAPI, route: APIRoute) -> None:
    """Register a module's route on the app itself (not `include_router`, which nests routers
    in this FastAPI version), so the app-wide guard applies and `app.routes` lists it."""
    app.add_api_route(
        route.path,
        route.endpoint,
        methods=sorted(route.methods or ()),
        response_model=route.response_model,
        status_code=route.status_code,
        response_class=route.response_class,
        responses=route.responses,
        tags=route.tags,
        summary=route.summary,
        description=route.description,
        name=route.name,
    )


def route_keys(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves."""
    keys = []
    for route in app.routes:
        path = getattr(route, "path", None)
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD" and path is not None:
                keys.append((method, path))
    return keys


def unruled_routes(app: FastAPI) -> list[tuple[str, str]]:
    return [key for key in route_keys(app) if key not in authz.ROUTE_PERMISSIONS]


__all__ = ["AccountService", "create_admin_api", "route_keys"]
