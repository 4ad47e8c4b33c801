"""What the admin API needs from the account store, and the per-request guard.

`AccountService` is the contract the account store implements (authentication plus login,
logout, passwords and personal tokens). `guard` runs before every route: it looks the route up
in the permission table (no entry: refused), authenticates, checks CSRF on state-changing
session requests, keeps an account with a one-time password to the routes that change it, and
refuses principals that hold the permission nowhere. Project-level checks happen in the route
with `authz.require`, against the project the action touches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from fastapi import Request

from signalvault.config import Settings
from signalvault.control.accounts.principal import Authenticator, Principal
from signalvault.control.api import authz
from signalvault.control.credentials import ProviderCredentials
from signalvault.errors import AuthError, Forbidden
from signalvault.evidence.incidents import IncidentBook
from signalvault.gateway.keyring import KeyRing
from signalvault.store import Store
from signalvault.store.account_queries import Account, ApiToken
from signalvault.trail.audit import AuditTrail

SESSION_COOKIE = "sv_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SessionStart(Protocol):
    """What a login returns: the cookie secret and the CSRF token."""

    @property
    def secret(self) -> str: ...
    @property
    def csrf_token(self) -> str: ...
    @property
    def must_change_password(self) -> bool: ...


class IssuedToken(Protocol):
    """A personal API token's metadata (its secret is returned beside it, once)."""

    @property
    def id(self) -> str: ...
    @property
    def expires_at(self) -> float | None: ...


class AccountService(Protocol):
    """The account store as the admin API uses it (control.accounts.service.AccountService has
    this shape)."""

    @property
    def authenticator(self) -> Authenticator: ...

    def login(self, email: str, password: str, address: str | None) -> SessionStart:
        """Start a session for good credentials.

        Raises:
            AuthError: wrong email or password, or a disabled account (one message for all).
            RateLimited: too many failed attempts for the account or the address.
        """
        ...

    def logout(self, session_secret: str) -> bool:
        """End the session of a cookie; False if it had already ended."""
        ...

    def change_password(
        self,
        account_id: str,
        current: str,
        new: str,
        actor: str,
        *,
        address: str | None = None,
        keep_session: str | None = None,
    ) -> int:
        """Set a chosen password; every session but `keep_session` (a cookie secret) ends.
        Returns how many ended.

        Raises:
            BadRequest: wrong current password (`wrong_password`), or a refused new one.
            RateLimited: too many wrong passwords for the account or the address.
        """
        ...

    def create_token(
        self, account_id: str, name: str, expires_in: float | None, actor: str
    ) -> tuple[IssuedToken, str]:
        """Issue a personal API token (`svadm-...`): its metadata and its secret (shown once).

        Raises:
            Forbidden: the account still has its one-time password (`password_change_required`).
        """
        ...

    def list_tokens(self, account_id: str | None = None) -> list[ApiToken]:
        """An account's tokens, oldest first (metadata only)."""
        ...

    def get_token(self, token_id: str) -> ApiToken:
        """Raises NotFound."""
        ...

    def revoke_token(self, token_id: str, actor: str) -> ApiToken:
        """Refused from the next request on. Raises NotFound, BadRequest (already revoked)."""
        ...

    def create_account(
        self, email: str, roles: Mapping[str | None, str], actor: str, password: str | None = None
    ) -> tuple[Account, str | None]:
        """A new account and, without a password, its generated one-time password."""
        ...

    def get_account(self, ref: str) -> Account:
        """Raises NotFound."""
        ...

    def list_accounts(self) -> list[Account]: ...

    def set_roles(self, account_id: str, roles: Mapping[str | None, str], actor: str) -> Account:
        """Raises NotFound, BadRequest (bad roles, or no enabled owner would be left)."""
        ...

    def disable_account(self, account_id: str, actor: str) -> object:
        """Disable an account; its sessions and tokens end at once. Raises NotFound, BadRequest."""
        ...

    def enable_account(self, account_id: str, actor: str) -> Account:
        """Raises NotFound, BadRequest."""
        ...


@dataclass(frozen=True, slots=True)
class _Refuse:
    def authenticate(
        self, authorization: str | None, session_cookie: str | None, address: str | None
    ) -> Principal | None:
        if authorization or session_cookie:
            raise AuthError("admin accounts are not set up", code="unauthorized")
        return None

    def check_csrf(self, session_cookie: str, csrf_header: str | None) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class NoAccounts:
    """The account service until one is connected: every request is refused (fail closed)."""

    authenticator: _Refuse = _Refuse()

    def login(self, email: str, password: str, address: str | None) -> SessionStart:
        raise AuthError("admin accounts are not set up", code="unauthorized")

    def logout(self, session_secret: str) -> bool:
        return False

    def change_password(
        self,
        account_id: str,
        current: str,
        new: str,
        actor: str,
        *,
        address: str | None = None,
        keep_session: str | None = None,
    ) -> int:
        raise AuthError("admin accounts are not set up", code="unauthorized")

    def create_token(
        self, account_id: str, name: str, expires_in: float | None, actor: str
    ) -> tuple[IssuedToken, str]:
        raise AuthError("admin accounts are not set up", code="unauthorized")

    def list_tokens(self, account_id: str | None = None) -> list[ApiToken]:
        return []

    def get_token(self, token_id: str) -> ApiToken:
        raise AuthError("admin accounts are not set up", code="unauthorized")

    def revoke_token(self, token_id: str, actor: str) -> ApiToken:
        raise AuthError("admin accounts are not set up", code="unauthorized")

    def create_account(
        self, email: str, roles: Mapping[str | None, str], actor: str, password: str | None = None
    ) -> tuple[Account, str | None]:
        raise AuthError("admin accounts are not set up", code="unauthorized")

    def get_account(self, ref: str) -> Account:
        raise AuthError("admin accounts are not set up", code="unauthorized")

    def list_accounts(self) -> list[Account]:
        return []

    def set_roles(self, account_id: str, roles: Mapping[str | None, str], actor: str) -> Account:
        raise AuthError("admin accounts are not set up", code="unauthorized")

    def disable_account(self, account_id: str, actor: str) -> object:
        raise AuthError("admin accounts are not set up", code="unauthorized")

    def enable_account(self, account_id: str, actor: str) -> Account:
        raise AuthError("admin accounts are not set up", code="unauthorized")


def client_address(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


def guard(request: Request) -> None:
    """The access check every route runs first (an app-wide dependency)."""
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    permission = None if template is None else authz.route_permission(request.method, template)
    if permission is None:
        raise Forbidden("this endpoint has no access rule", code="forbidden")
    if permission == authz.PUBLIC:
        return
    accounts = context(request).accounts.authenticator
    cookie = request.cookies.get(SESSION_COOKIE)
    principal = accounts.authenticate(
        request.headers.get("authorization"), cookie, client_address(request)
    )
    if principal is None:
        raise AuthError("sign in or send a personal API token", code="unauthorized")
    if principal.via == "session" and request.method not in SAFE_METHODS:
        csrf = request.headers.get("x-csrf-token")
        if cookie is None or not accounts.check_csrf(cookie, csrf):
            raise Forbidden("missing or wrong X-CSRF-Token", code="csrf_failed")
    # Whatever the role: a generated password is known to whoever handed it over, so until
    # its holder chooses one the account may only change it (or log out).
    if principal.must_change_password and not authz.is_open_before_password_change(
        request.method, template
    ):
        raise Forbidden(
            "this account still has its one-time password: change it first with "
            "POST /api/auth/password",
            code="password_change_required",
        )
    if not authz.has_anywhere(principal, permission):
        raise Forbidden("your role does not allow this", code="forbidden")
    request.state.principal = principal


def principal(request: Request) -> Principal:
    """The principal `guard` authenticated (routes that need one depend on this)."""
    found: Principal | None = getattr(request.state, "principal", None)
    if found is None:  # a route that is PUBLIC in the table but asks for a principal
        raise AuthError("sign in or send a personal API token", code="unauthorized")
    return found


@dataclass(frozen=True, slots=True)
class Context:
    """The services routes use (set on the app at creation)."""

    store: Store
    keyring: KeyRing
    trail: AuditTrail
    settings: Settings
    accounts: AccountService
    credentials: ProviderCredentials
    incidents: IncidentBook | None = None


def context(request: Request) -> Context:
    found: Context = request.app.state.context
    return found
