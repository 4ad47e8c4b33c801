"""The account service: accounts and roles, login and sessions, personal API tokens. Each state
change is written to the audit trail (actor, before/after), never with a password, a hash or a
secret. The admin API and the CLI call these functions; neither touches the tables itself.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, NoReturn

from signalvault.config import AccountSettings
from signalvault.control.accounts.authenticator import AccountAuthenticator, digest, principal
from signalvault.control.accounts.checks import (
    check_email,
    check_roles,
    is_owner,
    normalize_email,
)
from signalvault.control.accounts.passwords import Passwords, generate_password
from signalvault.control.accounts.principal import Principal
from signalvault.control.accounts.throttle import LoginThrottle
from signalvault.control.accounts.token_service import PersonalTokens
from signalvault.control.projects import ProjectRegistry
from signalvault.errors import AuthError, BadRequest, NotFound
from signalvault.store import Store
from signalvault.store.account_queries import (
    GLOBAL,
    Account,
    AccountQueries,
    FirstOwnerRefused,
    SessionRow,
)
from signalvault.trail.audit import AuditTrail

SESSION_ROWS_KEPT = 86400.0  # seconds an ended session's row stays (its 401 says "ended")
ANONYMOUS = "anonymous"  # the actor of a failed login: nobody has been authenticated


class NewSession(NamedTuple):
    """What a login hands the browser: the cookie secret and the CSRF token (neither stored),
    and whether the account must change its one-time password before anything else."""

    secret: str
    csrf_token: str
    must_change_password: bool = False


class Disabled(NamedTuple):
    """A disabled account and what ended with it."""

    account: Account
    sessions_ended: int
    tokens_revoked: int


class AccountService(PersonalTokens):
    """Accounts, sessions and tokens over a Store, audited through an AuditTrail.

    Args:
        pepper: the gateway-key pepper (keyring.load_pepper) that keys token hashes.
        passwords: hashing parameters (default: from `settings`; tests pass cheaper ones).
        clock: the time source (tests pass a fake one to step over expiries and locks).
        live: the settings in force now, when run-time overrides apply (default: `settings`).
    """

    def __init__(
        self,
        store: Store,
        trail: AuditTrail,
        pepper: bytes,
        settings: AccountSettings,
        *,
        passwords: Passwords | None = None,
        clock: Callable[[], float] = time.time,
        live: Callable[[], AccountSettings] | None = None,
    ) -> None:
        self.settings = settings
        # The session and login-lock settings in force now (run-time overrides, see
        # signalvault/runtime_settings.py); the password hashing ones are read once, here.
        self._live = live or (lambda: settings)
        self.queries = AccountQueries(store.engine)
        self.passwords = passwords or Passwords.from_settings(settings)
        self.throttle = LoginThrottle(self.queries, self._live)
        self.authenticator = AccountAuthenticator(self.queries, pepper, self._live, clock=clock)
        self._projects = ProjectRegistry(store, trail, clock=clock)
        self._trail = trail
        self._pepper = pepper
        self._clock = clock

    # -- accounts -------------------------------------------------------------------------------
    def create_account(
        self,
        email: str,
        roles: Mapping[str | None, str],
        actor: str,
        password: str | None = None,
    ) -> tuple[Account, str | None]:
        """Create an account; returns it and, if no password was given, the generated one-time
        password (shown once, stored only as its Argon2id hash).

        Raises:
            BadRequest: invalid email, role or password, or the email is taken.
        """
        account, password_hash, generated = self._new_account(email, roles, actor, password)
        if not self.queries.insert_account(account, password_hash):
            raise BadRequest("an account with this email already exists", code="account_exists")
        self._audit_created(account, actor, generated)
        self._register_projects(account.roles, actor)
        return account, generated

    def create_first_owner(
        self, email: str, actor: str, password: str | None = None
    ) -> tuple[Account, str | None]:
        """The first global owner (`signalvault init`), atomically: of several concurrent calls
        on one store, one succeeds.

        Raises:
            BadRequest: invalid email or password; an owner exists already (code
                `owner_exists`); the email is taken.
        """
        account, password_hash, generated = self._new_account(
            email, {None: "owner"}, actor, password
        )
        try:
            self.queries.insert_first_owner(account, password_hash)
        except FirstOwnerRefused as refused:
            if refused.reason == "email_taken":
                raise BadRequest(
                    "an account with this email already exists", code="account_exists"
                ) from None
            raise BadRequest(
                "an owner account already exists; add accounts with `signalvault users create`",
                code="owner_exists",
            ) from None
        self._audit_created(account, actor, generated)
        return account, generated

    def _new_account(
        self, email: str, roles: Mapping[str | None, str], actor: str, password: str | None
    ) -> tuple[Account, str, str | None]:
        """A validated account, its password hash, and the generated password if none given."""
        address = check_email(email)
        checked = check_roles(roles)
        generated = generate_password() if password is None else None
        if password is not None:
            self.passwords.check_policy(password, address)
        now = self._clock()
        account = Account(
            id="acc_" + secrets.token_hex(8),
            email=address,
            roles=checked,
            created_at=now,
            created_by=actor,
            disabled_at=None,
            disabled_by=None,
            # A generated password is one the holder has not chosen: None asks for a change.
            password_changed_at=None if generated else now,
        )
        return account, self.passwords.hash(password or generated or ""), generated

    def _audit_created(self, account: Account, actor: str, generated: str | None) -> None:
        self._audit(
            "account_created",
            actor,
            {
                "account": account.id,
                "email": account.email,
                "roles": account.roles,
                "one_time_password": bool(generated),
            },
        )

    def get_account(self, ref: str) -> Account:
        """An account by id or email. Raises NotFound."""
        if "@" in ref:
            found = self.queries.find_login(normalize_email(ref))
            account = None if found is None else found[0]
        else:
            account = self.queries.get_account(ref)
        if account is None:
            raise NotFound(f"no account {ref}")
        return account

    def list_accounts(self) -> list[Account]:
        return self.queries.list_accounts()

    def set_roles(self, account_id: str, roles: Mapping[str | None, str], actor: str) -> Account:
        """Replace an account's roles. Raises NotFound, BadRequest (also when it would leave no
        enabled owner)."""
        account = self.get_account(account_id)
        checked = check_roles(roles)
        if checked.get(GLOBAL) != "owner":
            self._keep_an_owner(account)
        self.queries.set_roles(account.id, checked)
        self._audit(
            "roles_changed",
            actor,
            {
                "account": account.id,
                "email": account.email,
                "before": account.roles,
                "after": checked,
            },
        )
        self._register_projects(checked, actor)
        return self.get_account(account.id)

    def _register_projects(self, roles: Mapping[str, str], actor: str) -> None:
        """A role in a project nobody registered yet registers it (audited)."""
        for project in roles:
            if project != GLOBAL:
                self._projects.ensure(project, actor, "account_role")

    def disable_account(self, account_id: str, actor: str) -> Disabled:
        """Disable an account; its sessions and tokens end in the same transaction."""
        account = self.get_account(account_id)
        if account.is_disabled:
            raise BadRequest(f"account {account.email} is already disabled")
        self._keep_an_owner(account)
        ended = self.queries.disable_account(account.id, self._clock(), actor)
        if ended is None:
            raise BadRequest(f"account {account.email} is already disabled")
        self._audit(
            "account_disabled",
            actor,
            {
                "account": account.id,
                "email": account.email,
                "before": {"disabled": False},
                "after": {"disabled": True},
                "sessions_ended": ended[0],
                "tokens_revoked": ended[1],
            },
        )
        return Disabled(self.get_account(account.id), *ended)

    def enable_account(self, account_id: str, actor: str) -> Account:
        """Enable a disabled account (its old sessions and tokens stay ended)."""
        account = self.get_account(account_id)
        if not self.queries.enable_account(account.id):
            raise BadRequest(f"account {account.email} is not disabled")
        self._audit(
            "account_enabled",
            actor,
            {
                "account": account.id,
                "email": account.email,
                "before": {"disabled": True},
                "after": {"disabled": False},
            },
        )
        return self.get_account(account.id)

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
        """Set a password the holder chose (this ends a one-time password). Every session of
        the account ends but `keep_session` (the cookie secret of the session asking, which has
        just proved the current password); returns how many ended. Guesses of the current
        password count against the login throttle of the account's email and the address.

        Raises:
            RateLimited: too many failed logins or changes. BadRequest: `current` is wrong
                (code `wrong_password`), or `new` breaks the policy or equals `current`.
        """
        account = self.get_account(account_id)
        address = (address or "")[:64] or None  # bounded, as in `login`
        now = self._clock()
        self.throttle.check(account.email, address, now)
        found = self.queries.find_login(account.email)
        if found is None or not self.passwords.verify(found[1], current):
            locks = self.throttle.failed(account.email, address, now)
            self._audit(
                "password_change_failed",
                actor,
                {"account": account.id, "email": account.email, "reason": "wrong_password"},
            )
            self._audit_locks(locks)
            raise BadRequest(
                "the current password is wrong", code="wrong_password", param="current_password"
            )
        self.passwords.check_policy(new, account.email)
        if new == current:
            raise BadRequest(
                "the new password must differ from the current one", param="new_password"
            )
        self.throttle.succeeded(account.email)
        keep = None if keep_session is None else digest(keep_session)
        return self._set_password(account, self.passwords.hash(new), now, actor, keep)

    def reset_password(self, account_id: str, actor: str) -> str:
        """A new one-time password for an account (shown once); every session ends, and until
        the holder changes it the account can do nothing but change it."""
        account = self.get_account(account_id)
        password = generate_password()
        self._set_password(account, self.passwords.hash(password), None, actor)
        return password

    def _set_password(
        self,
        account: Account,
        password_hash: str,
        changed_at: float | None,
        actor: str,
        keep: str | None = None,
    ) -> int:
        self.queries.set_password(account.id, password_hash, changed_at)
        ended = self.queries.revoke_sessions(account.id, self._clock(), keep)
        self._audit(
            "password_changed" if changed_at is not None else "password_reset",
            actor,
            {
                "account": account.id,
                "email": account.email,
                "before": {"one_time_password": account.password_changed_at is None},
                "after": {"one_time_password": changed_at is None},
                "sessions_ended": ended,
                "session_kept": keep is not None,
            },
        )
        return ended

    def _keep_an_owner(self, account: Account) -> None:
        """Refuse a change that would leave no enabled global owner (nobody could undo it)."""
        if is_owner(account) and not any(
            is_owner(other) for other in self.queries.list_accounts() if other.id != account.id
        ):
            raise BadRequest("this is the last owner; make another account owner first")

    # -- login and sessions ---------------------------------------------------------------------
    def login(self, email: str, password: str, address: str | None) -> NewSession:
        """Check a password and start a session.

        Raises:
            RateLimited: too many failures for this email or from this address (no password is
                checked until the lock ends).
            AuthError: the same "invalid email or password" for an unknown email, a wrong
                password or a disabled account.
        """
        # Bounded: both end up in throttle keys and audit details, and no account has more.
        address = (address or "")[:64] or None
        now = self._clock()
        account = self._check_password(email, password, address, now, None)
        self.queries.purge_sessions(account.id, now - SESSION_ROWS_KEPT)
        secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.queries.insert_session(
            SessionRow(
                id=digest(secret),
                account_id=account.id,
                csrf_hash=digest(csrf),
                created_at=now,
                last_seen_at=now,
                expires_at=now + self._live().session_max_hours * 3600,
                revoked_at=None,
                address=address,
            )
        )
        self._audit(
            "login", f"account:{account.email}", {"account": account.id, "address": address}
        )
        return NewSession(secret, csrf, account.password_changed_at is None)

    def authenticate_password(self, email: str, password: str, *, via: str = "cli") -> Principal:
        """Who a command acting as an account is (`policies approve --as EMAIL`): the password
        is checked and throttled like a login and the outcome audited (`login` / `login_failed`
        with `via`), but no session starts.

        Raises:
            RateLimited, AuthError: as `login`.
        """
        account = self._check_password(email, password, None, self._clock(), via)
        self._audit("login", f"account:{account.email}", {"account": account.id, "via": via})
        return principal(account, via)

    def _check_password(
        self, email: str, password: str, address: str | None, now: float, via: str | None
    ) -> Account:
        """The enabled account these credentials open; failures counted, locked and audited."""
        email = normalize_email(email)[:320]
        self.throttle.check(email, address, now)
        found = self.queries.find_login(email)
        if found is None:
            self.passwords.verify_nothing(password)  # same time as a real check
            self._login_failed(email, address, now, "unknown_account", via)
        account, password_hash = found
        if not self.passwords.verify(password_hash, password):
            self._login_failed(email, address, now, "wrong_password", via)
        if account.is_disabled:
            self._login_failed(email, address, now, "account_disabled", via)
        self.throttle.succeeded(email)
        if self.passwords.needs_rehash(password_hash):
            self.queries.rehash_password(account.id, self.passwords.hash(password))
        return account

    def _login_failed(
        self, email: str, address: str | None, now: float, reason: str, via: str | None
    ) -> NoReturn:
        locks = self.throttle.failed(email, address, now)
        details: dict[str, Any] = {"email": email, "address": address, "reason": reason}
        if via is not None:
            details["via"] = via
        self._audit("login_failed", ANONYMOUS, details)
        self._audit_locks(locks)
        raise AuthError("invalid email or password", code="invalid_credentials")

    def _audit_locks(self, locks: list[tuple[str, float]]) -> None:
        for key, until in locks:
            self._audit("login_locked", ANONYMOUS, {"key": key, "until": until})

    def logout(self, session_secret: str) -> bool:
        """End the session of a cookie; False if it had already ended or never existed."""
        session = self.queries.find_session(digest(session_secret))
        if session is None or not self.queries.revoke_session(session.id, self._clock()):
            return False
        account = self.queries.get_account(session.account_id)
        actor = f"account:{account.email}" if account else ANONYMOUS
        self._audit("logout", actor, {"account": session.account_id})
        return True

    def _audit(self, kind: str, actor: str, details: dict[str, Any]) -> None:
        self._trail.record_event(kind, actor, details)
