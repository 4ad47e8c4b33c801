"""Accounts and roles (owners): the accounts `GET /api/accounts` lists, creating one (its
one-time password shown once, on the answer), changing roles, disabling and enabling, all
through the account routes and the account service they call (which audits every change)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from signalvault.control.accounts.principal import ROLES
from signalvault.control.api import account_routes
from signalvault.control.api.models import AccountCreate, AccountUpdate
from signalvault.dashboard.render import page
from signalvault.dashboard.viewer import field, look, read_form
from signalvault.errors import BadRequest

DONE = {
    "roles": "Roles changed.",
    "disabled": "Account disabled: its sessions and tokens ended.",
    "enabled": "Account enabled.",
}


def roles_of(text: str | None) -> dict[str, str]:
    """`admin` or `*=admin, alpha=viewer` (project=role; `*` is the global role)."""
    roles: dict[str, str] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        project, _, role = part.rpartition("=")
        roles[project.strip() or "*"] = role.strip()
    if not roles:
        raise BadRequest("give a role, e.g. viewer, or project=role pairs")
    return roles


async def accounts(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/accounts")
    listing = await viewer.call(account_routes.list_accounts)
    return page(
        request,
        "accounts.html",
        viewer,
        accounts=listing.data,
        roles=ROLES,
        done=DONE.get(request.query_params.get("done", "")),
    )


async def create(request: Request) -> Response:
    form = await read_form(request)
    viewer = await look(request, "POST", "/api/accounts", form)
    body = AccountCreate(email=field(form, "email") or "", roles=roles_of(field(form, "roles")))  # type: ignore[arg-type]
    created = await viewer.call(account_routes.create_account, body)
    return page(request, "account_created.html", viewer, account=created)


async def update(request: Request) -> Response:
    form = await read_form(request)
    viewer = await look(request, "PATCH", "/api/accounts/{account_id}", form)
    action = field(form, "action")
    if action == "roles":
        body = AccountUpdate(roles=roles_of(field(form, "roles")))  # type: ignore[arg-type]
    elif action in ("disable", "enable"):
        body = AccountUpdate(disabled=action == "disable")
    else:
        raise BadRequest("no such change")
    await viewer.call(account_routes.update_account, request.path_params["account_id"][:64], body)
    done = "roles" if action == "roles" else f"{action}d"
    return RedirectResponse(f"/accounts?done={done}", status_code=303)


routes = [
    Route("/accounts", accounts, methods=["GET"]),
    Route("/accounts", create, methods=["POST"]),
    Route("/accounts/{account_id}", update, methods=["POST"]),
]
