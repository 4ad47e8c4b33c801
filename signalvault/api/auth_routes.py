"""Sign-in: sessions (cookie + CSRF token) and personal API tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from signalvault.accounts.principal import Principal
from signalvault.api.deps import SESSION_COOKIE, Context, client_address, context, principal
from signalvault.api.models import Done, LoginRequest, LoginResponse, TokenCreated, TokenRequest
from signalvault.console import iso

router = APIRouter(tags=["auth"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]


@router.post("/api/auth/login", response_model=LoginResponse)
def login(body: LoginRequest, request: Request, response: Response, api: Ctx) -> LoginResponse:
    """Start a session: the cookie is HttpOnly, Secure and SameSite=Strict; send the returned
    `csrf_token` as `X-CSRF-Token` on every state-changing request made with it."""
    session = api.accounts.login(body.email, body.password, client_address(request))
    response.set_cookie(
        SESSION_COOKIE, session.secret, path="/api", secure=True, httponly=True, samesite="strict"
    )
    return LoginResponse(csrf_token=session.csrf_token)


@router.post("/api/auth/logout", response_model=Done)
def logout(request: Request, response: Response, api: Ctx, who: Who) -> Done:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is not None:
        api.accounts.logout(cookie)
    response.delete_cookie(SESSION_COOKIE, path="/api", secure=True, httponly=True)
    return Done()


@router.post("/api/tokens", response_model=TokenCreated, status_code=201)
def create_token(body: TokenRequest, api: Ctx, who: Who) -> TokenCreated:
    """A personal API token (`svadm-...`) for scripts, shown once; send it as
    `Authorization: Bearer` (no CSRF token needed)."""
    token, secret = api.accounts.create_token(
        who.account_id, body.name, body.expires_seconds, who.actor
    )
    return TokenCreated(id=token.id, token=secret, expires_at=iso(token.expires_at))
