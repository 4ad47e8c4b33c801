"""`AccountAuthenticator`: who is calling the admin API, from a personal API token
(`Authorization: Bearer svadm-...`) or a session cookie. Every call reads the store, so a
disabled account, a revoked token or an ended session is refused on the very next request by
every process."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

from signalvault.config import AccountSettings
from signalvault.control.accounts.api_tokens import is_well_formed
from signalvault.control.accounts.principal import Principal
from signalvault.crypto.gateway_keys import hash_secret
from signalvault.errors import AuthError
from signalvault.store.account_queries import GLOBAL, Account, AccountQueries

TOUCH_EVERY = 60.0  # seconds; last-used times are written at most this often


def digest(secret: str) -> str:
    """SHA-256 (hex) of a session secret or CSRF token: 256 random bits need no slower hash."""
    return hashlib.sha256(secret.encode()).hexdigest()


def principal(account: Account, via: str) -> Principal:
    roles = {
        None if project == GLOBAL else project: role for project, role in account.roles.items()
    }
    return Principal(
        account_id=account.id,
        email=account.email,
        roles=roles,
        via=via,
        # None: the password was generated (init, create, reset) and is not the holder's own.
        must_change_password=account.password_changed_at is None,
    )


class AccountAuthenticator:
    """Implements accounts.principal.Authenticator over the account tables."""

    def __init__(
        self,
        queries: AccountQueries,
        pepper: bytes,
        settings: AccountSettings | Callable[[], AccountSettings],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`settings`: fixed, or a callable giving the settings in force (run-time overrides
        of the session lifetimes apply from the next request)."""
        self._queries = queries
        self._pepper = pepper
        self._settings = settings if callable(settings) else lambda: settings
        self._clock = clock

    def authenticate(
        self, authorization: str | None, session_cookie: str | None, address: str | None
    ) -> Principal | None:
        """A token in `authorization` wins over a cookie; None if the request has neither.

        Raises:
            AuthError: malformed, unknown, revoked or expired token; unknown, ended or expired
                session; disabled account. The message says which.
        """
        if authorization is not None and authorization.strip():
            return self._from_token(authorization.strip())
        if session_cookie:
            return self._from_session(session_cookie)
        return None

    def check_csrf(self, session_cookie: str, csrf_header: str | None) -> bool:
        if not csrf_header or not session_cookie:
            return False
        session = self._queries.find_session(digest(session_cookie))
        return session is not None and hmac.compare_digest(digest(csrf_header), session.csrf_hash)

    def _from_token(self, authorization: str) -> Principal:
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise AuthError(
                "send a personal API token as `Authorization: Bearer svadm-...`",
                code="invalid_token",
            )
        if not is_well_formed(secret):
            raise AuthError("invalid API token", code="invalid_token")
        token = self._queries.find_token(hash_secret(self._pepper, secret))
        if token is None:
            raise AuthError("invalid API token", code="invalid_token")
        if token.revoked_at is not None:
            raise AuthError("this API token has been revoked", code="revoked_token")
        now = self._clock()
        if now >= token.expires_at:
            raise AuthError("this API token has expired", code="expired_token")
        account = self._live_account(token.account_id)
        self._queries.touch_token(token.id, now, TOUCH_EVERY)
        return principal(account, "token")

    def _from_session(self, cookie: str) -> Principal:
        session = self._queries.find_session(digest(cookie))
        if session is None:
            raise AuthError("no such session; log in again", code="invalid_session")
        if session.revoked_at is not None:
            raise AuthError("this session has ended; log in again", code="session_ended")
        now = self._clock()
        settings = self._settings()
        idle = settings.session_idle_minutes * 60
        # `expires_at` was fixed at login; a limit shortened since then applies too.
        if now >= min(session.expires_at, session.created_at + settings.session_max_hours * 3600):
            raise AuthError(
                f"this session has expired ({settings.session_max_hours:g} h after login); "
                "log in again",
                code="session_expired",
            )
        if now - session.last_seen_at >= idle:
            raise AuthError(
                f"this session has expired after {idle / 60:g} minutes without use; log in again",
                code="session_expired",
            )
        account = self._live_account(session.account_id)
        # Touching at most every tenth of the idle limit keeps writes rare without ending a
        # session noticeably early.
        self._queries.touch_session(session.id, now, min(TOUCH_EVERY, idle / 10))
        return principal(account, "session")

    def _live_account(self, account_id: str) -> Account:
        account = self._queries.get_account(account_id)
        if account is None or account.is_disabled:
            raise AuthError("this account is disabled", code="account_disabled")
        return account
