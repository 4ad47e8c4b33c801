"""Providers and their credentials: the configured providers with their circuit breakers, and
the stored credentials `GET /api/providers` lists (masked); storing one through the provider
route (write-only: the page never shows a secret back)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from signalvault.control.api import config_routes
from signalvault.control.api.models import ProviderCredentialSet
from signalvault.dashboard.render import page
from signalvault.dashboard.viewer import field, look, raw, read_form
from signalvault.errors import BadRequest

DONE = {"stored": "Credential stored encrypted; requests use it from the next one on."}


async def providers(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/providers")
    listing = await viewer.call(config_routes.list_providers)
    configured = viewer.api.settings.providers
    return page(
        request,
        "providers.html",
        viewer,
        credentials=listing.data,
        configured=configured,
        breakers=viewer.api.breakers(),
        done=DONE.get(request.query_params.get("done", "")),
    )


async def store_credential(request: Request) -> Response:
    form = await read_form(request)
    viewer = await look(request, "PUT", "/api/providers/{name}", form)
    name = field(form, "provider") or ""
    if name not in {p.name for p in viewer.api.settings.providers}:
        raise BadRequest("choose a configured provider")
    body = ProviderCredentialSet(
        api_key=raw(form, "api_key"), environment=field(form, "environment")
    )
    await viewer.call(config_routes.set_provider, name, body)
    return RedirectResponse("/providers?done=stored", status_code=303)


routes = [
    Route("/providers", providers, methods=["GET"]),
    Route("/providers", store_credential, methods=["POST"]),
]
