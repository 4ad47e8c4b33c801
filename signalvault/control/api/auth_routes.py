"""Sign-in: sessions (cookie + CSRF token), changing one's password, and personal API tokens
(issue, list, revoke). The account service audits every change."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from signalvault.console import iso
from signalvault.control.accounts.principal import Principal
from signalvault.control.api import authz
from signalvault.control.api.deps import (
    SESSION_COOKIE,
    SESSION_COOKIE_PATH,
    Context,
    client_address,
    context,
    principal,
)
from signalvault.control.api.models import (
    Done,
    LoginRequest,
    LoginResponse,
    PasswordChange,
    PasswordChanged,
    TokenCreated,
    TokenList,
    TokenOut,
    TokenRequest,
)
from signalvault.errors import Conflict, NotFound
from signalvault.store.account_queries import ApiToken

router = APIRouter(tags=["auth"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]
Ident = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


@router.post("/api/auth/login", response_model=LoginResponse)
def login(body: LoginRequest, request: Request, response: Response, api: Ctx) -> LoginResponse:
    """Start a session: the cookie (path /, shared with the dashboard) is HttpOnly, Secure and
    SameSite=Strict; send the returned
    `csrf_token` as `X-CSRF-Token` on every state-changing request made with it."""
    session = api.accounts.login(body.email, body.password, client_address(request))
    response.set_cookie(
        SESSION_COOKIE,
        session.secret,
        path=SESSION_COOKIE_PATH,
        secure=True,
        httponly=True,
        samesite="strict",
    )
    return LoginResponse(
        csrf_token=session.csrf_token, must_change_password=session.must_change_password
    )


@router.post("/api/auth/logout", response_model=Done)
def logout(request: Request, response: Response, api: Ctx, who: Who) -> Done:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is not None:
        api.accounts.logout(cookie)
    response.delete_cookie(SESSION_COOKIE, path=SESSION_COOKIE_PATH, secure=True, httponly=True)
    return Done()


@router.post("/api/auth/password", response_model=PasswordChanged)
def change_password(body: PasswordChange, request: Request, api: Ctx, who: Who) -> PasswordChanged:
    """Replace the caller's password (required first after a one-time password). Every other
    session of the account ends; the session that asks stays signed in (it has just proved the
    current password). Wrong current passwords are throttled like failed logins."""
    keep = request.cookies.get(SESSION_COOKIE) if who.via == "session" else None
    ended = api.accounts.change_password(
        who.account_id,
        body.current_password,
        body.new_password,
        who.actor,
        address=client_address(request),
        keep_session=keep,
    )
    return PasswordChanged(sessions_ended=ended)


@router.post("/api/tokens", response_model=TokenCreated, status_code=201)
def create_token(body: TokenRequest, api: Ctx, who: Who) -> TokenCreated:
    """A personal API token (`svadm-...`) for scripts, shown once; send it as
    `Authorization: Bearer` (no CSRF token needed)."""
    token, secret = api.accounts.create_token(
        who.account_id, body.name, body.expires_seconds, who.actor
    )
    return TokenCreated(id=token.id, token=secret, expires_at=iso(token.expires_at))


@router.get("/api/tokens", response_model=TokenList)
def list_tokens(
    api: Ctx,
    who: Who,
    account_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            pattern=r"^[A-Za-z0-9_-]+$",
            description="Another account's tokens (owners only); default: the caller's.",
        ),
    ] = None,
) -> TokenList:
    """The caller's personal API tokens, oldest first: metadata, never secrets."""
    target = who.account_id if account_id is None else account_id
    if target != who.account_id:
        authz.require(who, "accounts", None)
        target = api.accounts.get_account(target).id  # 404 for an unknown account
    return TokenList(data=[token_out(t) for t in api.accounts.list_tokens(target)])


@router.delete("/api/tokens/{token_id}", response_model=TokenOut)
def revoke_token(token_id: Ident, api: Ctx, who: Who) -> TokenOut:
    """Revoke one of the caller's tokens (owners: anyone's); it is refused from the next
    request on, by every gateway process. Another account's token answers 404."""
    try:
        token = api.accounts.get_token(token_id)
    except NotFound:
        token = None
    if token is None or not _may_touch(who, token):
        raise NotFound(f"no token {token_id}")
    if token.revoked_at is not None:
        raise Conflict("this token is already revoked")
    return token_out(api.accounts.revoke_token(token.id, who.actor))


def _may_touch(who: Principal, token: ApiToken) -> bool:
    return token.account_id == who.account_id or authz.role_allows(who, "accounts", None)


def token_out(token: ApiToken) -> TokenOut:
    return TokenOut(
        id=token.id,
        account_id=token.account_id,
        name=token.name,
        prefix=token.prefix,
        status=token.status_at(time.time()),
        created_at=iso(token.created_at),
        expires_at=iso(token.expires_at),
        revoked_at=iso(token.revoked_at),
        last_used_at=iso(token.last_used_at),
    )
