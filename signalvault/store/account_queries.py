"""Queries of accounts, sessions, personal API tokens and failed-login counters, over the
store's engine (SQLAlchemy Core, the same on SQLite and PostgreSQL). No HTTP, no hashing here:
callers hand in hashes and times.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, Engine, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from signalvault.errors import StoreError
from signalvault.store.schema import accounts, api_tokens, login_failures, sessions, state
from signalvault.store.sql import connect

GLOBAL = "*"  # the roles key of an account's global role
LOCKOUT_MEMORY = 86400.0  # seconds without a failure after which lock lengths start over
# A `state` row written with the first owner (`signalvault init`): its unique name is what
# makes two racing inits end with one owner.
FIRST_OWNER_MARKER = "first_owner"


class FirstOwnerRefused(Exception):
    """The first owner was not created: `reason` is "owner_exists" or "email_taken"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Account:
    """An account as stored (its password hash stays in the store layer's hands)."""

    id: str
    email: str
    roles: dict[str, str]  # project or "*" -> role
    created_at: float
    created_by: str
    disabled_at: float | None
    disabled_by: str | None
    password_changed_at: float | None

    @property
    def is_disabled(self) -> bool:
        return self.disabled_at is not None


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A personal API token's metadata (never its secret)."""

    id: str
    account_id: str
    name: str
    prefix: str
    created_at: float
    expires_at: float
    revoked_at: float | None
    last_used_at: float | None

    def status_at(self, now: float) -> Literal["active", "revoked", "expired"]:
        """`revoked`, `expired` or `active` at time `now`."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if now >= self.expires_at else "active"


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    account_id: str
    csrf_hash: str
    created_at: float
    last_seen_at: float
    expires_at: float
    revoked_at: float | None
    address: str | None


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        email=row.email,
        roles=dict(orjson.loads(row.roles)),
        created_at=row.created_at,
        created_by=row.created_by,
        disabled_at=row.disabled_at,
        disabled_by=row.disabled_by,
        password_changed_at=row.password_changed_at,
    )


def _token(row: Any) -> ApiToken:
    return ApiToken(**{name: getattr(row, name) for name in ApiToken.__dataclass_fields__})


def _session(row: Any) -> SessionRow:
    return SessionRow(**{name: getattr(row, name) for name in SessionRow.__dataclass_fields__})


_ACCOUNT_COLUMNS = [c for c in accounts.c if c.name != "password_hash"]
_TOKEN_COLUMNS = [c for c in api_tokens.c if c.name != "secret_hash"]


class AccountQueries:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _connect(self, *, write: bool = False) -> contextlib.AbstractContextManager[Connection]:
        """Driver failures become StoreError; IntegrityError passes to callers that expect it."""
        return connect(self._engine, write=write)

    # -- accounts -------------------------------------------------------------------------------
    def insert_account(self, account: Account, password_hash: str) -> bool:
        """False if an account with that email exists."""
        values = {name: getattr(account, name) for name in Account.__dataclass_fields__}
        values["roles"] = orjson.dumps(account.roles).decode()
        try:
            with self._connect(write=True) as conn:
                conn.execute(accounts.insert().values(**values, password_hash=password_hash))
        except IntegrityError:
            return False
        return True

    def insert_first_owner(self, account: Account, password_hash: str) -> None:
        """Insert the first global owner, atomically: of two concurrent calls, one inserts.

        The marker row goes in first, in the same transaction: a concurrent call waits on it
        (PostgreSQL: the row's unique key; SQLite: the write lock) and then fails on its key,
        so the check for an existing owner below cannot pass twice (a check-then-insert in two
        transactions would let both through).

        Raises:
            FirstOwnerRefused: an (enabled) owner exists already, or the email is taken.
        """
        values = {name: getattr(account, name) for name in Account.__dataclass_fields__}
        values["roles"] = orjson.dumps(account.roles).decode()
        step = "marker"
        try:
            with self._connect(write=True) as conn:
                conn.execute(state.insert().values(name=FIRST_OWNER_MARKER, value=1))
                # Owners made before the marker existed (`users create --role owner`) count too.
                rows = conn.execute(select(accounts.c.roles, accounts.c.disabled_at)).all()
                if any(
                    row.disabled_at is None and orjson.loads(row.roles).get(GLOBAL) == "owner"
                    for row in rows
                ):
                    raise FirstOwnerRefused("owner_exists")  # rolls the marker back
                step = "account"
                conn.execute(accounts.insert().values(**values, password_hash=password_hash))
        except IntegrityError:
            raise FirstOwnerRefused("owner_exists" if step == "marker" else "email_taken") from None

    def get_account(self, account_id: str) -> Account | None:
        with self._connect() as conn:
            row = conn.execute(select(*_ACCOUNT_COLUMNS).where(accounts.c.id == account_id)).first()
        return None if row is None else _account(row)

    def find_login(self, email: str) -> tuple[Account, str] | None:
        """(account, password hash) for a lower-cased email."""
        with self._connect() as conn:
            row = conn.execute(select(accounts).where(accounts.c.email == email)).first()
        return None if row is None else (_account(row), row.password_hash)

    def list_accounts(self) -> list[Account]:
        with self._connect() as conn:
            rows = conn.execute(select(*_ACCOUNT_COLUMNS).order_by(accounts.c.created_at))
            return [_account(row) for row in rows]

    def set_roles(self, account_id: str, roles: dict[str, str]) -> bool:
        with self._connect(write=True) as conn:
            result = conn.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .values(roles=orjson.dumps(roles).decode())
            )
        return bool(result.rowcount)

    def set_password(self, account_id: str, password_hash: str, changed_at: float | None) -> None:
        """A new password; `changed_at` None marks a generated (one-time) one."""
        with self._connect(write=True) as conn:
            conn.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .values(password_hash=password_hash, password_changed_at=changed_at)
            )

    def rehash_password(self, account_id: str, password_hash: str) -> None:
        """The same password hashed with new parameters."""
        with self._connect(write=True) as conn:
            conn.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .values(password_hash=password_hash)
            )

    def disable_account(self, account_id: str, when: float, by: str) -> tuple[int, int] | None:
        """Disable an account and end its sessions and tokens in one transaction: (sessions
        ended, tokens revoked), or None if it does not exist or is already disabled."""
        with self._connect(write=True) as conn:
            done = conn.execute(
                update(accounts)
                .where(and_(accounts.c.id == account_id, accounts.c.disabled_at.is_(None)))
                .values(disabled_at=when, disabled_by=by)
            )
            if not done.rowcount:
                return None
            ended = self._revoke_sessions(conn, account_id, when)
            revoked = conn.execute(
                update(api_tokens)
                .where(
                    and_(api_tokens.c.account_id == account_id, api_tokens.c.revoked_at.is_(None))
                )
                .values(revoked_at=when)
            ).rowcount
        return ended, revoked

    def enable_account(self, account_id: str) -> bool:
        with self._connect(write=True) as conn:
            result = conn.execute(
                update(accounts)
                .where(and_(accounts.c.id == account_id, accounts.c.disabled_at.is_not(None)))
                .values(disabled_at=None, disabled_by=None)
            )
        return bool(result.rowcount)

    # -- sessions -------------------------------------------------------------------------------
    def insert_session(self, session: SessionRow) -> None:
        values = {name: getattr(session, name) for name in SessionRow.__dataclass_fields__}
        with self._connect(write=True) as conn:
            conn.execute(sessions.insert().values(**values))

    def find_session(self, session_id: str) -> SessionRow | None:
        with self._connect() as conn:
            row = conn.execute(select(sessions).where(sessions.c.id == session_id)).first()
        return None if row is None else _session(row)

    def touch_session(self, session_id: str, now: float, every: float) -> None:
        """Record use, at most once per `every` seconds (idle expiry needs no finer grain)."""
        with self._connect(write=True) as conn:
            conn.execute(
                update(sessions)
                .where(and_(sessions.c.id == session_id, sessions.c.last_seen_at <= now - every))
                .values(last_seen_at=now)
            )

    def revoke_session(self, session_id: str, when: float) -> bool:
        with self._connect(write=True) as conn:
            result = conn.execute(
                update(sessions)
                .where(and_(sessions.c.id == session_id, sessions.c.revoked_at.is_(None)))
                .values(revoked_at=when)
            )
        return bool(result.rowcount)

    def revoke_sessions(self, account_id: str, when: float, keep: str | None = None) -> int:
        """End every session of an account but `keep` (a session id); how many ended."""
        with self._connect(write=True) as conn:
            return self._revoke_sessions(conn, account_id, when, keep)

    def purge_sessions(self, account_id: str, before: float) -> int:
        """Delete an account's sessions that ended before `before` (the trail keeps the logins
        and logouts; the rows are only needed while a session can still be presented)."""
        c = sessions.c
        with self._connect(write=True) as conn:
            return int(
                conn.execute(
                    delete(sessions).where(
                        and_(
                            c.account_id == account_id,
                            or_(c.expires_at < before, c.revoked_at < before),
                        )
                    )
                ).rowcount
            )

    @staticmethod
    def _revoke_sessions(
        conn: Connection, account_id: str, when: float, keep: str | None = None
    ) -> int:
        c = sessions.c
        live = and_(c.account_id == account_id, c.revoked_at.is_(None))
        if keep is not None:
            live = and_(live, c.id != keep)
        return int(conn.execute(update(sessions).where(live).values(revoked_at=when)).rowcount)

    # -- personal API tokens --------------------------------------------------------------------
    def insert_token(self, token: ApiToken, secret_hash: bytes) -> None:
        values = {name: getattr(token, name) for name in ApiToken.__dataclass_fields__}
        with self._connect(write=True) as conn:
            conn.execute(api_tokens.insert().values(**values, secret_hash=secret_hash))

    def find_token(self, secret_hash: bytes) -> ApiToken | None:
        with self._connect() as conn:
            row = conn.execute(
                select(*_TOKEN_COLUMNS).where(api_tokens.c.secret_hash == secret_hash)
            ).first()
        return None if row is None else _token(row)

    def get_token(self, token_id: str) -> ApiToken | None:
        with self._connect() as conn:
            row = conn.execute(select(*_TOKEN_COLUMNS).where(api_tokens.c.id == token_id)).first()
        return None if row is None else _token(row)

    def list_tokens(self, account_id: str | None = None) -> list[ApiToken]:
        query = select(*_TOKEN_COLUMNS).order_by(api_tokens.c.created_at)
        if account_id is not None:
            query = query.where(api_tokens.c.account_id == account_id)
        with self._connect() as conn:
            return [_token(row) for row in conn.execute(query)]

    def revoke_token(self, token_id: str, when: float) -> bool:
        with self._connect(write=True) as conn:
            result = conn.execute(
                update(api_tokens)
                .where(and_(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None)))
                .values(revoked_at=when)
            )
        return bool(result.rowcount)

    def touch_token(self, token_id: str, now: float, every: float) -> None:
        with self._connect(write=True) as conn:
            conn.execute(
                update(api_tokens)
                .where(
                    and_(
                        api_tokens.c.id == token_id,
                        or_(
                            api_tokens.c.last_used_at.is_(None),
                            api_tokens.c.last_used_at <= now - every,
                        ),
                    )
                )
                .values(last_used_at=now)
            )

    # -- failed logins --------------------------------------------------------------------------
    def locked_until(self, keys: list[str], now: float) -> float | None:
        """The latest running lock among `keys`, if any."""
        with self._connect() as conn:
            until = conn.execute(
                select(login_failures.c.locked_until).where(
                    and_(login_failures.c.key.in_(keys), login_failures.c.locked_until > now)
                )
            ).scalars()
            found = [float(u) for u in until]
        return max(found) if found else None

    def record_failure(
        self, key: str, now: float, window: float, limit: int, lock: float, lock_max: float
    ) -> float | None:
        """Count one failed login for `key`; if that reaches `limit` within `window`, lock the
        key (for `lock` seconds, doubling per consecutive lock up to `lock_max`) and return
        the lock's end. The first statement is an UPDATE, so concurrent callers on one key
        serialise on its row (PostgreSQL) or the write lock (SQLite) and no failure is lost."""
        c = login_failures.c
        for _ in range(3):
            try:
                with self._connect(write=True) as conn:
                    counted = conn.execute(
                        update(login_failures)
                        .where(and_(c.key == key, c.window_start > now - window))
                        .values(failures=c.failures + 1)
                    ).rowcount
                    if not counted:
                        counted = conn.execute(
                            update(login_failures).where(c.key == key).values(failures=1)
                        ).rowcount
                        if counted:
                            self._restart_window(conn, key, now)
                    if not counted:
                        conn.execute(
                            login_failures.insert().values(
                                key=key, window_start=now, failures=1, lockouts=0
                            )
                        )
                    row = conn.execute(select(c.failures, c.lockouts).where(c.key == key)).one()
                    if row.failures < limit:
                        return None
                    until = now + min(lock * 2.0 ** min(int(row.lockouts), 30), lock_max)
                    conn.execute(
                        update(login_failures)
                        .where(c.key == key)
                        .values(
                            failures=0,
                            window_start=now,
                            locked_until=until,
                            lockouts=c.lockouts + 1,
                        )
                    )
                    return until
            except IntegrityError:  # another process inserted the row first: count again
                continue
        raise StoreError("could not record a failed login (concurrent changes)")

    @staticmethod
    def _restart_window(conn: Connection, key: str, now: float) -> None:
        c = login_failures.c
        row = conn.execute(select(c.window_start, c.locked_until).where(c.key == key)).one()
        last = max(row.window_start, row.locked_until or 0.0)
        values: dict[str, Any] = {"window_start": now}
        if now - last > LOCKOUT_MEMORY:
            values["lockouts"] = 0
        conn.execute(update(login_failures).where(c.key == key).values(**values))

    def purge_failures(self, before: float) -> int:
        """Delete counters with no failure or lock since `before` (e.g. sprayed unknown emails)."""
        c = login_failures.c
        with self._connect(write=True) as conn:
            return int(
                conn.execute(
                    delete(login_failures).where(
                        and_(
                            c.window_start < before,
                            or_(c.locked_until.is_(None), c.locked_until < before),
                        )
                    )
                ).rowcount
            )

    def clear_failures(self, key: str) -> None:
        """Forget the failures counted so far; the number of earlier locks stays, so locks
        keep growing until a day passes without failures."""
        with self._connect(write=True) as conn:
            conn.execute(
                update(login_failures).where(login_failures.c.key == key).values(failures=0)
            )
