"""The audit log of admin actions: the trail's event records (`GET /api/logs` narrowed to these
kinds, as the API lists them to the viewer): who changed which key, policy, account, setting or
hold, with before and after; sign-ins; content reads and exports."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from signalvault.control.api import log_routes
from signalvault.dashboard.render import page
from signalvault.dashboard.viewer import look

# Kinds by what they are about (each is listed by an index on kind; see migration 0011).
CATEGORIES: dict[str, tuple[str, ...]] = {
    "changes": (
        "admin",
        "gateway_key",
        "policy_proposed",
        "policy_approved",
        "policy_rejected",
        "policy_activated",
        "provider_credential_set",
        "provider_credential_removed",
        "settings",
        "project_created",
        "project_updated",
        "legal_hold",
        "master_key_rotation",
    ),
    "accounts": (
        "account_created",
        "roles_changed",
        "account_disabled",
        "account_enabled",
        "password_changed",
        "password_reset",
        "token_created",
        "token_revoked",
    ),
    "sign-ins": ("login", "login_failed", "login_locked", "logout", "password_change_failed"),
    "data access": (
        "content_read",
        "content_export",
        "subject_export",
        "export_manifest",
        "erasure",
        "retention_run",
        "audit_verified",
    ),
}
PAGE_SIZE = 50


async def audit_log(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/logs")
    category = request.query_params.get("category", "")
    kinds = CATEGORIES.get(category) or tuple(k for ks in CATEGORIES.values() for k in ks)
    cursor = request.query_params.get("cursor") or None
    listing = await viewer.call(
        log_routes.list_logs,
        kind=",".join(kinds),
        cursor=None if cursor is None else cursor[:100],
        limit=PAGE_SIZE,
    )
    next_url = None
    if listing.next_cursor is not None:
        query = {"category": category} if category in CATEGORIES else {}
        next_url = "/audit-log?" + urlencode({**query, "cursor": listing.next_cursor})
    return page(
        request,
        "audit_log.html",
        viewer,
        events=listing.data,
        categories=list(CATEGORIES),
        category=category if category in CATEGORIES else "",
        next_url=next_url,
    )


routes = [Route("/audit-log", audit_log, methods=["GET"])]
