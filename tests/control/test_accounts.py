"""Accounts (issue 4): Argon2id passwords, login throttling, sessions with idle and absolute
expiry, CSRF, personal API tokens, disabling, the audit events, the bytes on disk, and the
`init` / `users` commands. A fake clock steps over expiries and locks."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from signalvault.cli.main import cli
from signalvault.config import AccountSettings, Secret, Settings, StoreSettings
from signalvault.control.accounts.api_tokens import is_well_formed
from signalvault.control.accounts.passwords import Passwords
from signalvault.control.accounts.principal import Authenticator
from signalvault.control.accounts.service import AccountService
from signalvault.control.services import open_services
from signalvault.errors import AuthError, BadRequest, Forbidden, RateLimited
from signalvault.store import RecordFilter

# Cheap parameters keep the suite fast; the defaults are checked separately.
FAST = Passwords(time_cost=1, memory_kib=1024, parallelism=1)
OWNER_PASSWORD = "owner-Pa55word-long"
ALICE_PASSWORD = "alice-correct-horse"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path) -> StoreSettings:
    found = StoreSettings(data_dir=tmp_path / "data")
    if request.param == "postgres":
        found = replace(found, database_url=Secret(request.getfixturevalue("pg_url")))
    return found


@pytest.fixture
def services(backend):
    opened = open_services(Settings(store=backend))
    yield opened
    opened.store.close()


def make_accounts(services, clock, passwords=FAST, **settings) -> AccountService:
    return AccountService(
        services.store,
        services.trail,
        services.keyring.pepper,
        AccountSettings(**settings),
        passwords=passwords,
        clock=clock,
    )


@pytest.fixture
def accounts(services, clock) -> AccountService:
    service = make_accounts(services, clock)
    service.create_account("owner@example.com", {None: "owner"}, "cli:test", OWNER_PASSWORD)
    return service


@pytest.fixture
def alice(accounts):
    account, _ = accounts.create_account(
        "Alice@Example.com", {"p1": "developer", None: "viewer"}, "cli:test", ALICE_PASSWORD
    )
    return account


def events(services, kind: str | None = None) -> list[dict]:
    rows = services.store.list_records(RecordFilter(), limit=1000)
    found = [
        {"kind": r["kind"], "actor": r["actor"], "details": orjson.loads(r["details"])}
        for r in rows
        if r["kind"] != "interaction"
    ]
    return [e for e in found if kind is None or e["kind"] == kind]


def test_passwords_are_argon2id_with_the_configured_parameters():
    stored = Passwords.from_settings(AccountSettings()).hash("a-long-enough-password")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert FAST.verify(stored, "a-long-enough-password")
    assert not FAST.verify(stored, "a-long-enough-passwore")
    assert not FAST.verify("not a hash", "a-long-enough-password")
    assert FAST.hash("same-password-twice") != FAST.hash("same-password-twice")  # salted


@pytest.mark.parametrize(
    ("password", "complaint"),
    [
        ("short-pass1", "at least 12"),
        (" " * 12, "only spaces"),
        ("X@Example.com", "email address"),
        ("x" * 1025, "at most 1024"),
    ],
)
def test_password_policy_refuses(password, complaint):
    with pytest.raises(BadRequest, match=complaint) as caught:
        FAST.check_policy(password, "x@example.com")
    assert caught.value.param == "password"
    assert not password.strip() or password not in caught.value.message  # never echoed
    FAST.check_policy("twelve-chars", "x@example.com")


def test_creation_validates_email_roles_and_uniqueness(accounts, alice):
    with pytest.raises(BadRequest, match="invalid email"):
        accounts.create_account("not-an-email", {None: "viewer"}, "t", ALICE_PASSWORD)
    with pytest.raises(BadRequest, match="unknown role"):
        accounts.create_account("b@example.com", {None: "root"}, "t", ALICE_PASSWORD)
    with pytest.raises(BadRequest, match="global role"):
        accounts.create_account("b@example.com", {"p1": "owner"}, "t", ALICE_PASSWORD)
    with pytest.raises(BadRequest, match="already exists"):
        accounts.create_account("ALICE@example.com ", {None: "viewer"}, "t", ALICE_PASSWORD)
    assert alice.email == "alice@example.com"
    assert alice.roles == {"*": "viewer", "p1": "developer"}


def test_generated_password_is_shown_once_and_works(accounts):
    account, password = accounts.create_account("gen@example.com", {None: "auditor"}, "t")
    assert password is not None and len(password) >= 20
    assert account.password_changed_at is None  # a one-time password asks for a change
    accounts.login("gen@example.com", password, "10.0.0.1")


def test_login_starts_a_session_that_authenticates_with_csrf(accounts, alice):
    session = accounts.login(" ALICE@example.com", ALICE_PASSWORD, "10.0.0.1")
    authenticator: Authenticator = accounts.authenticator
    who = authenticator.authenticate(None, session.secret, "10.0.0.1")
    assert who is not None
    assert (who.account_id, who.email, who.via) == (alice.id, "alice@example.com", "session")
    assert who.role_in("p1") == "developer" and who.role_in("p2") == "viewer"
    assert who.actor == "account:alice@example.com"
    assert authenticator.check_csrf(session.secret, session.csrf_token)
    assert not authenticator.check_csrf(session.secret, None)
    assert not authenticator.check_csrf(session.secret, session.csrf_token + "x")
    other = accounts.login("owner@example.com", OWNER_PASSWORD, "10.0.0.1")
    assert not authenticator.check_csrf(session.secret, other.csrf_token)
    assert authenticator.authenticate(None, None, "10.0.0.1") is None
    with pytest.raises(AuthError, match="no such session"):
        authenticator.authenticate(None, "forged-cookie", None)


def test_unknown_email_wrong_password_and_disabled_account_answer_alike(services, accounts, alice):
    answers = []
    for email, password in [
        ("nobody@example.com", ALICE_PASSWORD),
        ("alice@example.com", "wrong-password-here"),
    ]:
        with pytest.raises(AuthError) as caught:
            accounts.login(email, password, "10.0.0.2")
        answers.append((caught.value.message, caught.value.code))
    accounts.disable_account(alice.id, "cli:test")
    with pytest.raises(AuthError) as caught:
        accounts.login("alice@example.com", ALICE_PASSWORD, "10.0.0.3")
    answers.append((caught.value.message, caught.value.code))
    assert set(answers) == {("invalid email or password", "invalid_credentials")}
    reasons = [e["details"]["reason"] for e in events(services, "login_failed")]
    assert sorted(reasons) == ["account_disabled", "unknown_account", "wrong_password"]


def test_login_rehashes_a_password_hashed_with_old_parameters(services, clock):
    old = make_accounts(services, clock)
    old.create_account("r@example.com", {None: "viewer"}, "t", ALICE_PASSWORD)
    stronger = Passwords(time_cost=2, memory_kib=2048, parallelism=1)
    new = make_accounts(services, clock, passwords=stronger)
    new.login("r@example.com", ALICE_PASSWORD, None)
    _, stored = new.queries.find_login("r@example.com")
    assert stored.startswith("$argon2id$v=19$m=2048,t=2,p=1$")
    new.login("r@example.com", ALICE_PASSWORD, None)  # still the same password


def test_failed_logins_lock_the_account_for_a_growing_time(services, accounts, alice, clock):
    for _ in range(5):
        with pytest.raises(AuthError):
            accounts.login("alice@example.com", "wrong-password-here", f"10.1.0.{_}")
    # Locked: even the right password is not checked.
    with pytest.raises(RateLimited) as caught:
        accounts.login("alice@example.com", ALICE_PASSWORD, "10.9.9.9")
    assert caught.value.code == "login_throttled" and 0 < caught.value.retry_after <= 900
    clock.advance(15 * 60)
    accounts.login("alice@example.com", ALICE_PASSWORD, "10.9.9.9")
    # A success clears the count but remembers the lock: the next one lasts twice as long.
    for _ in range(5):
        with pytest.raises(AuthError):
            accounts.login("alice@example.com", "wrong-password-here", f"10.2.0.{_}")
    clock.advance(15 * 60)
    with pytest.raises(RateLimited):
        accounts.login("alice@example.com", ALICE_PASSWORD, "10.9.9.9")
    clock.advance(15 * 60)
    accounts.login("alice@example.com", ALICE_PASSWORD, "10.9.9.9")
    locks = events(services, "login_locked")
    assert [e["details"]["key"] for e in locks] == ["email:alice@example.com"] * 2


def test_failures_spread_over_the_window_do_not_lock(accounts, alice, clock):
    for _ in range(8):
        with pytest.raises(AuthError):
            accounts.login("alice@example.com", "wrong-password-here", None)
        clock.advance(4 * 60)  # four failures at most within any 15 minutes
    accounts.login("alice@example.com", ALICE_PASSWORD, None)


def test_an_unknown_email_is_locked_like_a_known_one(accounts):
    for _ in range(5):
        with pytest.raises(AuthError):
            accounts.login("ghost@example.com", "wrong-password-here", None)
    with pytest.raises(RateLimited):
        accounts.login("ghost@example.com", "wrong-password-here", None)


def test_failures_from_one_address_lock_that_address_for_every_account(accounts, alice):
    for n in range(5):  # a spray: one guess each at five accounts
        with pytest.raises(AuthError):
            accounts.login(f"user{n}@example.com", "wrong-password-here", "203.0.113.7")
    with pytest.raises(RateLimited):
        accounts.login("alice@example.com", ALICE_PASSWORD, "203.0.113.7")
    accounts.login("alice@example.com", ALICE_PASSWORD, "198.51.100.1")  # elsewhere: fine


def test_throttling_is_shared_by_processes_through_the_store(tmp_path, clock, request):
    """Two services (as two gateway processes) on one store count the same failures."""
    backends = [StoreSettings(data_dir=tmp_path / "data")]
    try:
        url = request.getfixturevalue("pg_url")
        backends.append(StoreSettings(data_dir=tmp_path / "pg", database_url=Secret(url)))
    except pytest.skip.Exception:
        pass
    for backend in backends:
        first, second = (
            open_services(Settings(store=backend)),
            open_services(Settings(store=backend)),
        )
        try:
            a, b = make_accounts(first, clock), make_accounts(second, clock)
            a.create_account("shared@example.com", {None: "viewer"}, "t", ALICE_PASSWORD)
            for service in (a, b, a, b, a):
                with pytest.raises(AuthError):
                    service.login("shared@example.com", "wrong-password-here", None)
            with pytest.raises(RateLimited):
                b.login("shared@example.com", ALICE_PASSWORD, None)
        finally:
            first.store.close()
            second.store.close()


def test_a_session_ends_after_the_idle_time(accounts, alice, clock):
    session = accounts.login("alice@example.com", ALICE_PASSWORD, None)
    for _ in range(3):
        clock.advance(29 * 60)
        assert accounts.authenticator.authenticate(None, session.secret, None) is not None
    clock.advance(30 * 60)
    with pytest.raises(AuthError, match="30 minutes without use") as caught:
        accounts.authenticator.authenticate(None, session.secret, None)
    assert caught.value.code == "session_expired"


def test_a_session_ends_at_its_absolute_expiry_however_active(accounts, alice, clock):
    session = accounts.login("alice@example.com", ALICE_PASSWORD, None)
    for _ in range(12 * 3 - 1):
        clock.advance(20 * 60)
        accounts.authenticator.authenticate(None, session.secret, None)
    clock.advance(20 * 60)
    with pytest.raises(AuthError, match="12 h after login"):
        accounts.authenticator.authenticate(None, session.secret, None)


def test_logout_ends_the_session(services, accounts, alice):
    session = accounts.login("alice@example.com", ALICE_PASSWORD, None)
    assert accounts.logout(session.secret)
    assert not accounts.logout(session.secret)
    with pytest.raises(AuthError, match="ended") as caught:
        accounts.authenticator.authenticate(None, session.secret, None)
    assert caught.value.code == "session_ended"
    assert [e["actor"] for e in events(services, "logout")] == ["account:alice@example.com"]


def test_personal_api_tokens_authenticate_expire_and_revoke(accounts, alice, clock):
    token, secret = accounts.create_token(alice.id, "ci", 3600, "account:alice@example.com")
    assert secret.startswith("svadm-") and is_well_formed(secret)
    assert token.prefix == secret[:12] and token.expires_at == clock.now + 3600
    who = accounts.authenticator.authenticate(f"Bearer {secret}", None, None)
    assert who is not None and (who.email, who.via) == ("alice@example.com", "token")
    assert accounts.get_token(token.id).last_used_at == clock.now
    # A header wins over a cookie; a malformed one says how to send a token.
    altered = secret[:-1] + ("y" if secret.endswith("x") else "x")
    for header, message in [
        (f"Basic {secret}", "Bearer svadm-"),
        ("Bearer sv-prod-notatoken", "invalid API token"),
        (f"Bearer {altered}", "invalid API token"),
    ]:
        with pytest.raises(AuthError, match=message):
            accounts.authenticator.authenticate(header, "some-cookie", None)
    clock.advance(3600)
    with pytest.raises(AuthError, match="expired") as caught:
        accounts.authenticator.authenticate(f"Bearer {secret}", None, None)
    assert caught.value.code == "expired_token"

    other, other_secret = accounts.create_token(alice.id, "script", None, "t")
    assert other.expires_at == clock.now + 90 * 86400  # [accounts] token_default_days
    accounts.revoke_token(other.id, "account:owner@example.com")
    with pytest.raises(AuthError, match="revoked") as caught:
        accounts.authenticator.authenticate(f"Bearer {other_secret}", None, None)
    assert caught.value.code == "revoked_token"
    with pytest.raises(BadRequest, match="already revoked"):
        accounts.revoke_token(other.id, "t")
    with pytest.raises(BadRequest, match="at most 365 days"):
        accounts.create_token(alice.id, "forever", 366 * 86400, "t")
    assert [t.id for t in accounts.list_tokens(alice.id)] == [token.id, other.id]


def test_disabling_an_account_ends_its_sessions_and_tokens_at_once(services, accounts, alice):
    session = accounts.login("alice@example.com", ALICE_PASSWORD, None)
    _, secret = accounts.create_token(alice.id, "ci", None, "t")
    # A second service stands for another gateway process with its own state.
    elsewhere = make_accounts(services, FakeClock())
    assert elsewhere.authenticator.authenticate(f"Bearer {secret}", None, None) is not None
    done = accounts.disable_account("alice@example.com", "account:owner@example.com")
    assert (done.sessions_ended, done.tokens_revoked) == (1, 1)
    for authenticator in (accounts.authenticator, elsewhere.authenticator):
        with pytest.raises(AuthError):
            authenticator.authenticate(f"Bearer {secret}", None, None)
        with pytest.raises(AuthError):
            authenticator.authenticate(None, session.secret, None)
    with pytest.raises(BadRequest, match="disabled"):
        accounts.create_token(alice.id, "again", None, "t")
    # Enabling does not bring the old session or token back.
    accounts.enable_account(alice.id, "account:owner@example.com")
    with pytest.raises(AuthError, match="revoked"):
        accounts.authenticator.authenticate(f"Bearer {secret}", None, None)


def test_a_token_of_a_disabled_account_is_refused_even_if_not_revoked(accounts, alice):
    _, secret = accounts.create_token(alice.id, "ci", None, "t")
    # The service also revokes the tokens; this checks the account test on its own.
    with accounts.queries._connect(write=True) as conn:
        from signalvault.store.schema import accounts as table

        conn.execute(table.update().values(disabled_at=1.0).where(table.c.id == alice.id))
    with pytest.raises(AuthError, match="disabled") as caught:
        accounts.authenticator.authenticate(f"Bearer {secret}", None, None)
    assert caught.value.code == "account_disabled"


def test_the_last_owner_cannot_be_disabled_or_demoted(accounts, alice):
    owner = accounts.get_account("owner@example.com")
    with pytest.raises(BadRequest, match="last owner"):
        accounts.disable_account(owner.id, "t")
    with pytest.raises(BadRequest, match="last owner"):
        accounts.set_roles(owner.id, {None: "admin"}, "t")
    accounts.set_roles(alice.id, {None: "owner"}, "t")
    assert accounts.set_roles(owner.id, {None: "admin"}, "t").roles == {"*": "admin"}


def test_password_change_ends_sessions_and_reset_gives_a_one_time_password(accounts, alice):
    session = accounts.login("alice@example.com", ALICE_PASSWORD, None)
    with pytest.raises(BadRequest, match="current password") as caught:
        accounts.change_password(alice.id, "wrong-password-here", "new-password-1234", "t")
    assert caught.value.code == "wrong_password"
    with pytest.raises(BadRequest, match="differ"):
        accounts.change_password(alice.id, ALICE_PASSWORD, ALICE_PASSWORD, "t")
    with pytest.raises(BadRequest, match="at least 12"):
        accounts.change_password(alice.id, ALICE_PASSWORD, "short", "t")
    assert accounts.change_password(alice.id, ALICE_PASSWORD, "new-password-1234", "t") == 1
    with pytest.raises(AuthError, match="ended"):
        accounts.authenticator.authenticate(None, session.secret, None)
    accounts.login("alice@example.com", "new-password-1234", None)
    fresh = accounts.reset_password(alice.id, "account:owner@example.com")
    accounts.login("alice@example.com", fresh, None)
    assert accounts.get_account(alice.id).password_changed_at is None


def test_a_one_time_password_must_be_changed_before_anything_else(services, accounts, clock):
    account, otp = accounts.create_account("new@example.com", {None: "security"}, "t")
    session = accounts.login("new@example.com", otp, None)
    assert session.must_change_password
    who = accounts.authenticator.authenticate(None, session.secret, None)
    assert who is not None and who.must_change_password
    # No token may outlive the one-time password.
    with pytest.raises(Forbidden, match="one-time password") as caught:
        accounts.create_token(account.id, "ci", None, who.actor)
    assert caught.value.code == "password_change_required"
    other = accounts.login("new@example.com", otp, None)  # e.g. a second browser
    ended = accounts.change_password(
        account.id, otp, "my-own-password-1", who.actor, keep_session=session.secret
    )
    assert ended == 1
    # The session that changed it stays, now without the flag; the other one ended.
    who = accounts.authenticator.authenticate(None, session.secret, None)
    assert who is not None and not who.must_change_password
    with pytest.raises(AuthError, match="ended"):
        accounts.authenticator.authenticate(None, other.secret, None)
    assert not accounts.login("new@example.com", "my-own-password-1", None).must_change_password
    _, secret = accounts.create_token(account.id, "ci", None, who.actor)
    # A reset brings the flag back, on tokens made before it too.
    accounts.reset_password(account.id, "account:owner@example.com")
    by_token = accounts.authenticator.authenticate(f"Bearer {secret}", None, None)
    assert by_token is not None and by_token.must_change_password
    changed = events(services, "password_changed")[0]
    assert changed["actor"] == "account:new@example.com"
    assert changed["details"]["before"] == {"one_time_password": True}
    assert changed["details"]["after"] == {"one_time_password": False}
    assert changed["details"]["session_kept"] is True
    reset = events(services, "password_reset")[0]
    assert reset["details"]["after"] == {"one_time_password": True}


def test_guessing_the_current_password_is_throttled_and_audited(services, accounts, alice):
    for _ in range(5):
        with pytest.raises(BadRequest):
            accounts.change_password(
                alice.id, "wrong-password-here", "new-password-1234", "t", address="10.3.0.1"
            )
    with pytest.raises(RateLimited):
        accounts.change_password(alice.id, ALICE_PASSWORD, "new-password-1234", "t")
    with pytest.raises(RateLimited):  # the same lock as logins of that email
        accounts.login("alice@example.com", ALICE_PASSWORD, None)
    failed = events(services, "password_change_failed")
    assert len(failed) == 5 and failed[0]["details"]["reason"] == "wrong_password"
    assert "wrong-password-here" not in orjson.dumps(failed).decode()


def test_authenticate_password_checks_throttles_and_audits_without_a_session(
    services, accounts, alice
):
    who = accounts.authenticate_password("Alice@example.com", ALICE_PASSWORD, via="cli")
    assert (who.actor, who.via) == ("account:alice@example.com", "cli")
    logins = events(services, "login")
    assert logins[0]["details"] == {"account": alice.id, "via": "cli"}
    with accounts.queries._connect() as conn:
        from signalvault.store.schema import sessions

        assert conn.execute(sessions.select()).first() is None  # no session started
    for _ in range(5):
        with pytest.raises(AuthError, match="invalid email or password"):
            accounts.authenticate_password("alice@example.com", "wrong-password-here")
    with pytest.raises(RateLimited):
        accounts.authenticate_password("alice@example.com", ALICE_PASSWORD)
    failed = events(services, "login_failed")
    assert {e["details"]["via"] for e in failed} == {"cli"}


def test_every_change_is_audited_with_before_and_after(services, accounts, alice):
    accounts.set_roles(alice.id, {"p1": "security"}, "account:owner@example.com")
    token, _ = accounts.create_token(alice.id, "ci", None, "account:alice@example.com")
    accounts.revoke_token(token.id, "account:alice@example.com")
    accounts.login("alice@example.com", ALICE_PASSWORD, "10.0.0.9")
    accounts.disable_account(alice.id, "account:owner@example.com")
    by_kind = {e["kind"]: e for e in events(services)}
    created = [
        e for e in events(services, "account_created") if e["details"]["email"] == alice.email
    ]
    assert created[0]["actor"] == "cli:test"
    assert created[0]["details"]["roles"] == {"*": "viewer", "p1": "developer"}
    changed = by_kind["roles_changed"]
    assert changed["actor"] == "account:owner@example.com"
    assert changed["details"]["before"] == {"*": "viewer", "p1": "developer"}
    assert changed["details"]["after"] == {"p1": "security"}
    assert by_kind["token_created"]["details"]["token"] == token.id
    assert by_kind["token_revoked"]["actor"] == "account:alice@example.com"
    assert by_kind["login"]["details"] == {"account": alice.id, "address": "10.0.0.9"}
    disabled = by_kind["account_disabled"]["details"]
    assert (disabled["before"], disabled["after"]) == ({"disabled": False}, {"disabled": True})


def test_no_password_hash_token_or_session_secret_reaches_the_disk(tmp_path, clock):
    """Bytes check: every file of the data directory, after accounts, logins and tokens."""
    data = tmp_path / "data"
    services = open_services(Settings(store=StoreSettings(data_dir=data)))
    secrets_made: list[str] = [OWNER_PASSWORD, ALICE_PASSWORD]
    try:
        accounts = make_accounts(services, clock)
        owner, _ = accounts.create_account("o@example.com", {None: "owner"}, "t", OWNER_PASSWORD)
        alice, _ = accounts.create_account("a@example.com", {None: "viewer"}, "t", ALICE_PASSWORD)
        _, generated = accounts.create_account("g@example.com", {None: "viewer"}, "t")
        secrets_made.append(generated)
        for email, password in [("a@example.com", ALICE_PASSWORD), ("g@example.com", generated)]:
            session = accounts.login(email, password, "10.0.0.1")
            secrets_made += [session.secret, session.csrf_token]
            accounts.authenticator.authenticate(None, session.secret, None)
        with pytest.raises(AuthError):
            accounts.login("a@example.com", OWNER_PASSWORD + "-typo", None)
        secrets_made.append(OWNER_PASSWORD + "-typo")
        for account in (owner, alice):
            _, secret = accounts.create_token(account.id, "ci", None, "t")
            accounts.authenticator.authenticate(f"Bearer {secret}", None, None)
            secrets_made.append(secret)
        services.store.flush()
    finally:
        services.store.close()
    blobs = [p.read_bytes() for p in data.rglob("*") if p.is_file()]
    assert any(b"a@example.com" in blob for blob in blobs)  # the scan sees the database
    assert any(b"$argon2id$" in blob for blob in blobs)
    for secret in secrets_made:
        for blob in blobs:
            assert secret.encode() not in blob


def test_audit_events_hold_no_password_token_or_hash(services, accounts, alice):
    session = accounts.login("alice@example.com", ALICE_PASSWORD, None)
    _, token = accounts.create_token(alice.id, "ci", None, "t")
    with pytest.raises(AuthError):
        accounts.login("alice@example.com", "typed-wrong-password", None)
    text = orjson.dumps(events(services)).decode()
    for secret in (ALICE_PASSWORD, OWNER_PASSWORD, "typed-wrong-password", token, session.secret):
        assert secret not in text
    assert "$argon2" not in text and session.csrf_token not in text


def test_two_concurrent_first_owners_make_one(backend, services, clock):
    """Threads with their own store connections race `create_first_owner` (what `init` calls):
    exactly one owner, the others refused with `owner_exists`."""
    import threading

    contenders = 4
    opened = [open_services(Settings(store=backend)) for _ in range(contenders)]
    try:
        gate = threading.Barrier(contenders)
        outcomes: list[str] = []

        def init(n: int) -> None:
            service = make_accounts(opened[n], clock)
            gate.wait()
            try:
                service.create_first_owner(f"owner{n}@example.com", "cli:test", OWNER_PASSWORD)
                outcomes.append("created")
            except BadRequest as exc:
                outcomes.append(exc.code)

        threads = [threading.Thread(target=init, args=(n,)) for n in range(contenders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for other in opened:
            other.store.close()
    assert sorted(outcomes) == ["created"] + ["owner_exists"] * (contenders - 1)
    owners = [
        a for a in make_accounts(services, clock).list_accounts() if a.roles == {"*": "owner"}
    ]
    assert len(owners) == 1
    assert len(events(services, "account_created")) == 1


def test_the_first_owner_is_refused_when_an_owner_exists_without_the_marker(accounts):
    """An owner made by `users create --role owner` (no init marker) still stops `init`."""
    with pytest.raises(BadRequest, match="owner account already exists"):
        accounts.create_first_owner("second@example.com", "cli:test", OWNER_PASSWORD)
    assert [a.email for a in accounts.list_accounts()] == ["owner@example.com"]


# -- CLI ------------------------------------------------------------------------------------------
@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    env = {"SIGNALVAULT_DATA_DIR": str(tmp_path / "data"), "SIGNALVAULT_CONFIG": ""}

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli, list(args), env=env, input=input, catch_exceptions=False)

    return invoke


def login_with(tmp_path, email, password):
    services = open_services(Settings(store=StoreSettings(data_dir=tmp_path / "data")))
    try:
        service = AccountService(
            services.store, services.trail, services.keyring.pepper, AccountSettings()
        )
        return service.login(email, password, None)
    finally:
        services.store.close()


def test_init_writes_config_and_owner_then_refuses_a_second_time(run, tmp_path):
    first = run("init", "--email", "Root@Example.com", "--password-stdin", input=OWNER_PASSWORD)
    assert first.exit_code == 0, first.output
    assert OWNER_PASSWORD not in first.output and "one-time" not in first.output
    config = tmp_path / "signalvault.toml"
    assert "Wrote config file" in first.output and config.is_file()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert (tmp_path / "data" / "master.key").is_file()
    login_with(tmp_path, "root@example.com", OWNER_PASSWORD)

    config.write_text(config.read_text() + "\n# edited by hand\n")
    second = run("init", "--email", "other@example.com")
    assert second.exit_code == 1
    assert "owner account already exists" in second.output and "Traceback" not in second.output
    assert config.read_text().endswith("# edited by hand\n")  # never overwritten


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_two_inits_racing_as_processes_make_one_owner(tmp_path, request, store):
    """Two `signalvault init` processes on a fresh data directory (and, for PostgreSQL, a fresh
    schema) at once: exactly one owner, and the other exits 1 with a one-line error."""
    import os
    import subprocess
    import sys
    import time

    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "SIGNALVAULT_DATA_DIR": str(tmp_path / "data"),
        "SIGNALVAULT_CONFIG": "",
    }
    if store == "postgres":
        env["SIGNALVAULT_DATABASE_URL"] = request.getfixturevalue("pg_url")
    # Both import first, then start `init` at the same moment, so they meet while creating the
    # master key, migrating the store and inserting the owner.
    start = time.time() + 4
    launcher = (
        "import sys, time; from signalvault.cli.main import main; "
        "time.sleep(max(0.0, float(sys.argv[1]) - time.time())); "
        "sys.argv = ['signalvault', *sys.argv[2:]]; main()"
    )
    init = ["init", "--password-stdin", "--email"]
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", launcher, str(start), *init, f"o{n}@example.com"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for run in runs:
        assert run.stdin is not None
        run.stdin.write(OWNER_PASSWORD + "\n")
        run.stdin.close()
    results = [(run.stdout.read(), run.stderr.read()) for run in runs]  # type: ignore[union-attr]
    for run in runs:
        run.wait(timeout=120)
    codes = sorted(run.returncode for run in runs)
    assert codes == [0, 1], results
    loser = next(err for run, (_, err) in zip(runs, results, strict=True) if run.returncode)
    assert loser.strip() == (
        "Error: an owner account already exists; add accounts with `signalvault users create`"
    )
    assert "Traceback" not in "".join(out + err for out, err in results)
    store_settings = StoreSettings(data_dir=tmp_path / "data")
    if store == "postgres":
        store_settings = replace(
            store_settings, database_url=Secret(env["SIGNALVAULT_DATABASE_URL"])
        )
    services = open_services(Settings(store=store_settings))
    try:
        accounts = AccountService(
            services.store, services.trail, services.keyring.pepper, AccountSettings()
        )
        owners = [a.email for a in accounts.list_accounts() if a.roles == {"*": "owner"}]
    finally:
        services.store.close()
    assert len(owners) == 1
    winner = next(out for run, (out, _) in zip(runs, results, strict=True) if not run.returncode)
    assert owners[0] in winner and (tmp_path / "signalvault.toml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "signalvault.toml"]


def test_init_prints_a_one_time_password_and_asks_for_the_email(run, tmp_path):
    result = run("init", input="boss@example.com\n")
    assert result.exit_code == 0, result.output
    password = result.output.strip().splitlines()[-1]
    assert "one-time password" in result.output and len(password) >= 20
    login_with(tmp_path, "boss@example.com", password)


def test_init_with_bad_input_leaves_nothing_behind(run, tmp_path):
    result = run("init", "--email", "not-an-email", "--password-stdin", input=OWNER_PASSWORD)
    assert result.exit_code == 1 and "invalid email" in result.output
    short = run("init", "--email", "a@example.com", "--password-stdin", input="short\n")
    assert short.exit_code == 1 and "at least 12" in short.output
    assert not (tmp_path / "signalvault.toml").exists()
    assert not (tmp_path / "data").exists()
    assert run("init", "--password-stdin", input=OWNER_PASSWORD).exit_code == 2


def test_init_with_a_config_path_writes_that_file(run, tmp_path):
    target = tmp_path / "conf" / "gateway.toml"
    target.parent.mkdir()
    result = run("init", "--config", str(target), "--email", "o@example.com")
    assert result.exit_code == 0, result.output
    assert target.is_file() and not (tmp_path / "signalvault.toml").exists()
    assert "[[providers]]" in target.read_text()


def test_users_create_list_and_disable(run, tmp_path):
    run("init", "--email", "root@example.com", "--password-stdin", input=OWNER_PASSWORD)
    created = run(
        "users", "create", "--email", "dev@example.com", "--role", "developer", "--project", "p1"
    )
    assert created.exit_code == 0, created.output
    password = created.output.strip().splitlines()[-1]
    assert "developer in p1" in created.output
    session = login_with(tmp_path, "dev@example.com", password)
    chosen = run(
        "users",
        "create",
        "--email",
        "aud@example.com",
        "--role",
        "auditor",
        "--password-stdin",
        "--json",
        input=ALICE_PASSWORD + "\n",
    )
    row = orjson.loads(chosen.output)
    assert row["roles"] == {"*": "auditor"} and row["password"] is None
    bad = run("users", "create", "--email", "x@example.com", "--role", "root")
    assert bad.exit_code == 2

    listed = [orjson.loads(line) for line in run("users", "list", "--json").output.splitlines()]
    assert [r["email"] for r in listed] == [
        "root@example.com",
        "dev@example.com",
        "aud@example.com",
    ]
    assert all(
        "hash" not in key and "password" not in key.replace("password_changed_at", "")
        for r in listed
        for key in r
    )
    table = run("users", "list").output
    assert "p1=developer" in table and "*=owner" in table

    disabled = run("users", "disable", "dev@example.com")
    assert disabled.exit_code == 0 and "1 session(s) ended" in disabled.output
    assert "disabled" in run("users", "list").output
    again = run("users", "disable", "dev@example.com")
    assert again.exit_code == 1 and "already disabled" in again.output
    missing = run("users", "disable", "acc_nope")
    assert missing.exit_code == 1 and "no account acc_nope" in missing.output
    last = run("users", "disable", "root@example.com")
    assert last.exit_code == 1 and "last owner" in last.output
    assert session.secret  # the disabled account's session was the one ended


def test_users_reset_password_prints_a_one_time_password_that_must_be_changed(run, tmp_path):
    run("init", "--email", "root@example.com", "--password-stdin", input=OWNER_PASSWORD)
    run(
        "users",
        "create",
        "--email",
        "a@example.com",
        "--role",
        "security",
        "--password-stdin",
        input=ALICE_PASSWORD + "\n",
    )
    assert not login_with(tmp_path, "a@example.com", ALICE_PASSWORD).must_change_password
    reset = run("users", "reset-password", "a@example.com")
    assert reset.exit_code == 0, reset.output
    password = reset.output.strip().splitlines()[-1]
    assert "one-time password" in reset.output and len(password) >= 20
    with pytest.raises(AuthError):
        login_with(tmp_path, "a@example.com", ALICE_PASSWORD)
    assert login_with(tmp_path, "a@example.com", password).must_change_password
    listed = [orjson.loads(line) for line in run("users", "list", "--json").output.splitlines()]
    assert [r["password_changed_at"] for r in listed if r["email"] == "a@example.com"] == [None]
    missing = run("users", "reset-password", "nobody@example.com")
    assert missing.exit_code == 1 and "no account" in missing.output
    services = open_services(Settings(store=StoreSettings(data_dir=tmp_path / "data")))
    try:
        [reset_event] = events(services, "password_reset")
    finally:
        services.store.close()
    assert reset_event["actor"].startswith("cli:") and password not in str(reset_event)


def test_users_password_lets_the_holder_of_a_one_time_password_choose_one(run, tmp_path):
    run("init", "--email", "root@example.com", "--password-stdin", input=OWNER_PASSWORD)
    created = run("users", "create", "--email", "b@example.com", "--role", "security")
    one_time = created.output.strip().splitlines()[-1]
    assert login_with(tmp_path, "b@example.com", one_time).must_change_password
    chosen = "a password of my own choosing"
    wrong = run("users", "password", "b@example.com", "--password-stdin", input=f"nope\n{chosen}\n")
    assert wrong.exit_code == 1 and "current password is wrong" in wrong.output
    done = run(
        "users", "password", "b@example.com", "--password-stdin", input=f"{one_time}\n{chosen}\n"
    )
    assert done.exit_code == 0, done.output
    assert "1 session(s) ended" in done.output  # the session opened above
    assert not login_with(tmp_path, "b@example.com", chosen).must_change_password
    with pytest.raises(AuthError):
        login_with(tmp_path, "b@example.com", one_time)
    services = open_services(Settings(store=StoreSettings(data_dir=tmp_path / "data")))
    try:
        [changed] = events(services, "password_changed")
        [failed] = events(services, "password_change_failed")
    finally:
        services.store.close()
    assert changed["actor"] == failed["actor"] == "account:b@example.com"
    assert chosen not in str(changed) and one_time not in str(changed)


def test_users_tokens_lists_metadata_and_revoke_token_ends_one(run, tmp_path):
    run("init", "--email", "root@example.com", "--password-stdin", input=OWNER_PASSWORD)
    services = open_services(Settings(store=StoreSettings(data_dir=tmp_path / "data")))
    try:
        accounts = AccountService(
            services.store, services.trail, services.keyring.pepper, AccountSettings()
        )
        owner = accounts.get_account("root@example.com")
        first, secret = accounts.create_token(owner.id, "ci", None, "t")
        accounts.create_token(owner.id, "laptop", None, "t")
    finally:
        services.store.close()
    listed = [
        orjson.loads(line)
        for line in run("users", "tokens", "root@example.com", "--json").output.splitlines()
    ]
    assert [(t["name"], t["status"]) for t in listed] == [("ci", "active"), ("laptop", "active")]
    assert all(secret not in str(t) and "hash" not in str(t) for t in listed)
    revoked = run("users", "revoke-token", first.id)
    assert revoked.exit_code == 0 and first.id in revoked.output
    assert "revoked" in run("users", "tokens", "root@example.com").output
    again = run("users", "revoke-token", first.id)
    assert again.exit_code == 1 and "already revoked" in again.output
    assert run("users", "revoke-token", "tok_nope").exit_code == 1
    services = open_services(Settings(store=StoreSettings(data_dir=tmp_path / "data")))
    try:
        accounts = AccountService(
            services.store, services.trail, services.keyring.pepper, AccountSettings()
        )
        with pytest.raises(AuthError, match="revoked"):
            accounts.authenticator.authenticate(f"Bearer {secret}", None, None)
        assert events(services, "token_revoked")[0]["details"]["token"] == first.id
    finally:
        services.store.close()


def test_config_rejects_weak_account_settings(tmp_path):
    from signalvault.config import load_settings
    from signalvault.errors import ConfigError

    for name, value in [
        ("SIGNALVAULT_ACCOUNTS_PASSWORD_MIN_LENGTH", "8"),
        ("SIGNALVAULT_ACCOUNTS_PASSWORD_MEMORY_KIB", "1024"),
        ("SIGNALVAULT_ACCOUNTS_SESSION_IDLE_MINUTES", "0"),
        ("SIGNALVAULT_ACCOUNTS_TOKEN_DEFAULT_DAYS", "400"),
    ]:
        with pytest.raises(ConfigError, match=r"\[accounts\]"):
            load_settings(None, {name: value}, cwd=tmp_path)
    settings = load_settings(None, {"SIGNALVAULT_ACCOUNTS_SESSION_IDLE_MINUTES": "5"}, cwd=tmp_path)
    assert settings.accounts.session_idle_minutes == 5.0


def test_stale_sessions_and_failure_counters_are_purged(services, accounts, alice, clock):
    first = accounts.login("alice@example.com", ALICE_PASSWORD, None)
    with pytest.raises(AuthError):
        accounts.login("sprayed@example.com", "wrong-password-here", None)
    clock.advance(13 * 3600)
    with pytest.raises(AuthError, match="expired"):
        accounts.authenticator.authenticate(None, first.secret, None)
    clock.advance(2 * 86400)
    with pytest.raises(AuthError):  # a later failure sweeps counters idle for a day
        accounts.login("other@example.com", "wrong-password-here", None)
    accounts.login("alice@example.com", ALICE_PASSWORD, None)  # and a login, ended sessions
    with pytest.raises(AuthError, match="no such session"):
        accounts.authenticator.authenticate(None, first.secret, None)
    assert accounts.queries.locked_until(["email:sprayed@example.com"], 0.0) is None
    with accounts.queries._connect() as conn:
        from signalvault.store.schema import login_failures

        keys = {row.key for row in conn.execute(login_failures.select())}
    assert keys == {"email:other@example.com"}
