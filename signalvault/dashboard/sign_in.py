"""Signing in and out, and choosing a password (required first after a one-time password): the
account service the admin API's auth routes use, with the same throttling and sessions."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from signalvault.control.api import auth_routes
from signalvault.control.api.deps import SESSION_COOKIE, SESSION_COOKIE_PATH
from signalvault.control.api.models import LoginRequest, PasswordChange
from signalvault.dashboard.render import page
from signalvault.dashboard.viewer import (
    CSRF_COOKIE,
    PASSWORD_PATH,
    SignInNeeded,
    Viewer,
    context,
    field,
    local_path,
    look,
    raw,
    read_form,
)
from signalvault.errors import AuthError, BadRequest, RateLimited

LOGOUT = ("POST", "/api/auth/logout")
PASSWORD = ("POST", "/api/auth/password")


async def login_form(request: Request) -> Response:
    target = local_path(request.query_params.get("next"))
    return page(request, "login.html", None, next=target, email="", error=None)


async def login(request: Request) -> Response:
    form = await read_form(request)
    target = local_path(field(form, "next"))
    email = field(form, "email") or ""
    try:
        body = LoginRequest(email=email, password=raw(form, "password"))
    except ValueError:
        return _login_failed(request, target, email, "Enter your email and password.", 400)
    address = request.client.host if request.client else None
    try:
        session = await run_in_threadpool(
            context(request).accounts.login, body.email, body.password, address
        )
    except RateLimited as locked:
        response = _login_failed(request, target, email, locked.message, 429)
        response.headers["retry-after"] = str(max(1, round(locked.retry_after)))
        return response
    except AuthError as refused:
        return _login_failed(request, target, email, refused.message, 401)
    response = RedirectResponse(
        PASSWORD_PATH if session.must_change_password else target, status_code=303
    )
    for name, value in ((SESSION_COOKIE, session.secret), (CSRF_COOKIE, session.csrf_token)):
        response.set_cookie(
            name, value, path=SESSION_COOKIE_PATH, secure=True, httponly=True, samesite="strict"
        )
    return response


def _login_failed(request: Request, target: str, email: str, message: str, status: int) -> Response:
    return page(
        request, "login.html", None, status_code=status, next=target, email=email, error=message
    )


async def logout(request: Request) -> Response:
    form = await read_form(request)
    try:
        viewer = await look(request, *LOGOUT, form)
    except SignInNeeded:
        viewer = None
    cookie = request.cookies.get(SESSION_COOKIE)
    if viewer is not None and cookie is not None:
        await run_in_threadpool(viewer.api.accounts.logout, cookie)
    response = RedirectResponse("/login", status_code=303)
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path=SESSION_COOKIE_PATH, secure=True, httponly=True)
    return response


async def password_form(request: Request) -> Response:
    viewer = await look(request, *PASSWORD)
    return page(request, "password.html", viewer, error=None, done=False)


async def change_password(request: Request) -> Response:
    form = await read_form(request)
    viewer = await look(request, *PASSWORD, form)
    new = raw(form, "new_password")
    if new != raw(form, "confirm_password"):
        return _password_failed(request, viewer, "The new passwords do not match.")
    try:
        body = PasswordChange(current_password=raw(form, "current_password"), new_password=new)
        await viewer.call(auth_routes.change_password, body, request)
    except ValueError:
        return _password_failed(request, viewer, "Fill in every field.")
    except (BadRequest, RateLimited) as refused:
        return _password_failed(request, viewer, refused.message, refused.status_code)
    return RedirectResponse("/?done=password", status_code=303)


def _password_failed(request: Request, viewer: Viewer, message: str, status: int = 400) -> Response:
    return page(request, "password.html", viewer, status_code=status, error=message, done=False)


routes = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route(PASSWORD_PATH, password_form, methods=["GET"]),
    Route(PASSWORD_PATH, change_password, methods=["POST"]),
]
