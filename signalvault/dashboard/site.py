"""`create_dashboard(context)`: the dashboard as one Starlette app over the admin API's context
(same store, trail, accounts and sessions). `signalvault.app` hands it every request that is not
/v1/, /api/, a probe or /metrics, so nothing of it sits on the data plane's path.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from signalvault.control.api.deps import Context
from signalvault.dashboard import (
    account_pages,
    audit_pages,
    export_pages,
    guardrail_pages,
    incident_pages,
    integrity_pages,
    key_pages,
    lifecycle_pages,
    log_pages,
    overview_pages,
    provider_pages,
    report_pages,
    run_pages,
    settings_pages,
    sign_in,
)
from signalvault.dashboard.jobs import Jobs
from signalvault.dashboard.render import environment, page
from signalvault.dashboard.security import SecurityHeaders
from signalvault.dashboard.viewer import (
    PASSWORD_PATH,
    PasswordChangeNeeded,
    SignInNeeded,
    sign_in_url,
)
from signalvault.errors import ConfigError, CryptoError, HeldError, HTTPError, StoreError

log = logging.getLogger("signalvault.dashboard")
STATIC = Path(__file__).with_name("static")
PAGES = (
    sign_in,
    overview_pages,
    log_pages,
    run_pages,
    incident_pages,
    report_pages,
    guardrail_pages,
    key_pages,
    account_pages,
    provider_pages,
    lifecycle_pages,
    export_pages,
    integrity_pages,
    settings_pages,
    audit_pages,
)


def create_dashboard(context: Context) -> SecurityHeaders:
    """The dashboard over the admin API's context; every response carries the security headers."""
    routes: list[BaseRoute] = [Mount("/static", StaticFiles(directory=STATIC), name="static")]
    for module in PAGES:
        routes.extend(module.routes)
    app = Starlette(
        routes=routes,
        exception_handlers={
            SignInNeeded: _sign_in,
            PasswordChangeNeeded: _change_password,
            HTTPError: _refused,
            ConfigError: _bad_input,
            ValidationError: _bad_input,
            HeldError: _held,
            StoreError: _store,
            CryptoError: _crypto,
            404: _not_found,
            405: _not_allowed,
            500: _unexpected,
        },
    )
    app.state.context = context
    app.state.templates = environment()
    app.state.jobs = Jobs()
    return SecurityHeaders(app)


async def _sign_in(request: Request, exc: Exception) -> Response:
    return RedirectResponse(sign_in_url(request), status_code=303)


async def _change_password(request: Request, exc: Exception) -> Response:
    return RedirectResponse(PASSWORD_PATH, status_code=303)


def _problem(request: Request, status: int, title: str, message: str) -> Response:
    return page(request, "error.html", None, status_code=status, title=title, message=message)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPError)
    titles = {403: "Not allowed", 404: "Not found", 409: "Conflict", 429: "Too many attempts"}
    response = _problem(
        request, exc.status_code, titles.get(exc.status_code, "Refused"), exc.message
    )
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        response.headers["retry-after"] = str(max(1, round(retry_after)))
    return response


async def _bad_input(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ValidationError):
        # Where and why only: the rejected value may be a password or a secret.
        message = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in exc.errors()[:10]
        )
    else:
        message = str(exc)
    return _problem(request, 400, "Check the input", message or "invalid input")


async def _held(request: Request, exc: Exception) -> Response:
    return _problem(request, 409, "Under legal hold", str(exc))


async def _store(request: Request, exc: Exception) -> Response:
    log.error("dashboard: store unavailable: %s", exc)
    return _problem(request, 503, "Store unavailable", "The audit store is unavailable.")


async def _crypto(request: Request, exc: Exception) -> Response:
    log.error("dashboard: %s", type(exc).__name__)
    return _problem(request, 500, "Cannot decrypt", "Stored content could not be decrypted.")


async def _not_found(request: Request, exc: Exception) -> Response:
    return _problem(request, 404, "Not found", "There is no such page.")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return _problem(request, 405, "Not allowed", "This page does not take that method.")


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("dashboard: unexpected %s on %s", type(exc).__name__, request.url.path)
    return _problem(request, 500, "Something went wrong", "The error has been logged.")
