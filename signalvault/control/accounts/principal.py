"""Who is calling the admin API, and with which roles. The admin API depends only on this module;
the account store (passwords, sessions, tokens) implements `Authenticator`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

# SPEC §5, most privileged first.
ROLES = ("owner", "admin", "security", "auditor", "developer", "viewer")


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated account on one request.

    `roles` maps a project to the account's role there; the key None is its global role, which
    applies to every project. `via` says how it authenticated: "session" (cookie; state-changing
    requests need the CSRF token), "token" (personal API token; no CSRF) or "cli" (a password
    typed into a CLI command). `must_change_password`: the account still holds a generated
    one-time password, so the admin API lets it do nothing but change it (or log out).
    """

    account_id: str
    email: str
    roles: Mapping[str | None, str] = field(default_factory=dict)
    via: str = "token"
    must_change_password: bool = False

    def role_in(self, project: str | None) -> str | None:
        """The account's role for `project` (its global role unless a project role is set)."""
        if project is not None and project in self.roles:
            return self.roles[project]
        return self.roles.get(None)

    @property
    def actor(self) -> str:
        """How the audit trail names this account."""
        return f"account:{self.email}"


class Authenticator(Protocol):
    def authenticate(
        self, authorization: str | None, session_cookie: str | None, address: str | None
    ) -> Principal | None:
        """The principal for a request's `Authorization` header or session cookie; None if it
        presents neither. Raises errors.AuthError for a bad, expired, revoked or disabled one."""
        ...

    def check_csrf(self, session_cookie: str, csrf_header: str | None) -> bool:
        """True if the CSRF token sent with a state-changing session request is the session's."""
        ...
