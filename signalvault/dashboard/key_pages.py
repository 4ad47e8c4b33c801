"""Gateway keys: the keys `GET /api/keys` lists for the viewer (developers: their own), and
creating, rotating (with grace) and revoking through the key routes; a new secret is shown once,
on the answer to the action that made it (never at a URL)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from signalvault.control.api import authz, key_routes
from signalvault.control.api.models import Key, KeyCreate, KeyRotate
from signalvault.crypto.gateway_keys import parse_duration
from signalvault.dashboard.render import page
from signalvault.dashboard.viewer import Viewer, field, look, read_form
from signalvault.errors import BadRequest, ConfigError

DONE = {"revoked": "The key is revoked: every gateway process refuses it from its next request."}
GRACE_CHOICES = (
    ("0", "none: the old secret stops now"),
    ("3600", "1 hour"),
    ("86400", "24 hours"),
    ("604800", "7 days"),
)
MAX_KEYS_SHOWN = 1000


def _number(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise BadRequest(f"{name} must be a whole number")
    return int(value)


async def keys(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/keys")
    shown: list[Key] = []
    cursor = None
    while len(shown) < MAX_KEYS_SHOWN:
        listing = await viewer.call(key_routes.list_keys, cursor=cursor, limit=200)
        shown.extend(listing.data)
        cursor = listing.next_cursor
        if cursor is None:
            break
    return _keys_page(request, viewer, shown, done=DONE.get(request.query_params.get("done", "")))


def _keys_page(request: Request, viewer: Viewer, shown: list[Key], done: str | None) -> Response:
    writable = {
        k.id
        for k in shown
        if authz.may_touch_key(viewer.who, "keys.write", k.project, k.created_by)
    }
    return page(
        request,
        "keys.html",
        viewer,
        keys=sorted(shown, key=lambda k: (k.status != "active", k.project, k.name)),
        writable=writable,
        may_create=viewer.may("keys.write"),
        grace_choices=GRACE_CHOICES,
        done=done,
    )


async def create(request: Request) -> Response:
    form = await read_form(request)
    viewer = await look(request, "POST", "/api/keys", form)
    expires = field(form, "expires")
    try:
        expires_seconds = None if expires is None else parse_duration(expires)
    except (ConfigError, ValueError):
        raise BadRequest("expiry must be a duration like 30d, 12h or 90m") from None
    models = [m.strip() for m in (field(form, "models") or "").split(",") if m.strip()]
    body = KeyCreate(
        name=field(form, "name") or "",
        environment=field(form, "environment") or "",
        project=field(form, "project") or "default",
        models=models,
        rpm=_number(field(form, "rpm"), "requests per minute"),
        tpm=_number(field(form, "tpm"), "tokens per minute"),
        budget_tokens=_number(field(form, "budget_tokens"), "the monthly token budget"),
        expires_seconds=expires_seconds,
    )
    created = await viewer.call(key_routes.create_key, body)
    return page(request, "key_secret.html", viewer, key=created, rotated=False)


async def rotate(request: Request) -> Response:
    form = await read_form(request)
    viewer = await look(request, "POST", "/api/keys/{key_id}/rotate", form)
    grace = _number(field(form, "grace_seconds"), "the grace period") or 0
    rotated = await viewer.call(
        key_routes.rotate, request.path_params["key_id"][:64], KeyRotate(grace_seconds=grace)
    )
    return page(request, "key_secret.html", viewer, key=rotated, rotated=True)


async def revoke(request: Request) -> Response:
    form = await read_form(request)
    viewer = await look(request, "POST", "/api/keys/{key_id}/revoke", form)
    await viewer.call(key_routes.revoke_key, request.path_params["key_id"][:64])
    return RedirectResponse("/keys?done=revoked", status_code=303)


routes = [
    Route("/keys", keys, methods=["GET"]),
    Route("/keys", create, methods=["POST"]),
    Route("/keys/{key_id}/rotate", rotate, methods=["POST"]),
    Route("/keys/{key_id}/revoke", revoke, methods=["POST"]),
]
