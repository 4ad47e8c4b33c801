"""Who is looking at a page: the session cookie checked by the admin API's own `admit` against
the permission of the API route the page mirrors (one table, `control/api/authz.py`), the CSRF
token of a posted form checked like the `X-CSRF-Token` header, and the API's route functions
called with that principal so a page shows exactly what the API answers the same account.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request

from signalvault.control.accounts.principal import Principal
from signalvault.control.api import authz
from signalvault.control.api.deps import SESSION_COOKIE, Context, admit
from signalvault.errors import AuthError, Forbidden

CSRF_COOKIE = "sv_csrf"  # the session's CSRF token, for the forms the server renders
CSRF_FIELD = "csrf_token"
PASSWORD_PATH = "/password"  # noqa: S105 (a page's path)
MAX_FORM_FIELDS = 200
MAX_FORM_BYTES = 1024 * 1024  # a policy draft or a pasted text; nothing larger is posted
T = TypeVar("T")


class SignInNeeded(Exception):
    """No session, or one that ended: the page answers with the sign-in form."""


class PasswordChangeNeeded(Exception):
    """The account still has its one-time password: only the password page is open."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """A signed-in account on one request, with the services the API's routes take."""

    api: Context
    who: Principal
    csrf: str  # put into every form the page renders

    def may(self, permission: str) -> bool:
        """Whether to offer an action somewhere: the route it leads to checks again."""
        return authz.has_anywhere(self.who, permission)

    def may_in(self, permission: str, project: str | None) -> bool:
        """Whether the role in `project` (None: the global role) holds `permission`."""
        return authz.role_allows(self.who, permission, project)

    def may_globally(self, permission: str) -> bool:
        return authz.role_allows(self.who, permission, None)

    async def call(self, route: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """An admin API route function with this viewer as its principal (off the event loop:
        they read the store)."""
        return await run_in_threadpool(route, *args, api=self.api, who=self.who, **kwargs)


def context(request: Request) -> Context:
    found: Context = request.app.state.context
    return found


async def look(
    request: Request,
    method: str,
    path: str,
    form: FormData | None = None,
    *,
    permission: str | None = None,
) -> Viewer:
    """The viewer of a page that shows (or, for a POST, does) what `method path` of the admin
    API does, refused exactly as that route would refuse the same account.

    Raises:
        SignInNeeded, PasswordChangeNeeded, Forbidden.
    """
    needed = permission or authz.route_permission(method, path)
    if needed is None or needed == authz.PUBLIC:
        raise RuntimeError(f"dashboard page without an access rule: {method} {path}")
    api = context(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    token = None if form is None else _text(form.get(CSRF_FIELD))
    try:
        who = await run_in_threadpool(
            admit,
            api.accounts.authenticator,
            request.method,
            needed,
            authorization=None,  # pages use the session only; tokens are for scripts
            session_cookie=cookie,
            csrf_token=token,
            address=request.client.host if request.client else None,
            is_open_before_password_change=authz.is_open_before_password_change(method, path),
        )
    except AuthError:
        raise SignInNeeded from None
    except Forbidden as refused:
        if refused.code == "password_change_required":
            raise PasswordChangeNeeded from None
        raise
    return Viewer(api, who, request.cookies.get(CSRF_COOKIE, ""))


async def read_form(request: Request) -> FormData:
    """A posted form, bounded (the parser also refuses more fields or bytes than this)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_FORM_BYTES:
        raise Forbidden("the form is too large", code="too_large")
    return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def raw(form: FormData, name: str) -> str:
    """A form field exactly as typed (passwords), "" when absent."""
    return _text(form.get(name)) or ""


def field(form: FormData, name: str) -> str | None:
    """A form field as stripped text; None when absent or empty."""
    value = _text(form.get(name))
    if value is None:
        return None
    value = value.strip()
    return value or None


def query_filters(
    request: Request,
    names: tuple[str, ...],
    max_length: int,
    choices: dict[str, tuple[str, ...]] | None = None,
) -> dict[str, str]:
    """The listing filters set in the query string, each stripped and bounded; a filter with
    `choices` is dropped when its value is not one of them."""
    found = {}
    for name in names:
        value = request.query_params.get(name, "").strip()
        if value:
            found[name] = value[:max_length]
    for name, allowed in (choices or {}).items():
        if name in found and found[name] not in allowed:
            del found[name]
    return found


def sign_in_url(request: Request) -> str:
    """The sign-in page, coming back to this page (a local path only) after."""
    target = request.url.path
    if request.method == "GET" and request.url.query:
        target += "?" + request.url.query
    return "/login?next=" + quote(target, safe="/")


def local_path(target: str | None) -> str:
    """`target` if it is a path on this origin, else the overview (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target
