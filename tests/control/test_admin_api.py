"""The admin API: the role matrix over every route, project scoping, audited content reads,
CSRF on session changes, error shapes, pagination, and no secret or ciphertext in responses.

Accounts come from a small fake `AccountService`; the services under it are real (SQLite store,
key ring, trail) and traffic goes through the real /v1 proxy to the mock provider."""

from __future__ import annotations

import contextlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import orjson
import pytest

from signalvault.app import GatewayApp, create_app
from signalvault.control.accounts.principal import ROLES, Principal
from signalvault.control.api import create_admin_api, route_keys
from signalvault.control.api.authz import ROUTE_PERMISSIONS
from signalvault.control.api.deps import SESSION_COOKIE
from signalvault.errors import AuthError, BadRequest, NotFound, StoreError
from signalvault.store import RecordFilter
from signalvault.store.account_queries import Account, ApiToken

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple"


class NewSession(NamedTuple):
    secret: str
    csrf_token: str
    must_change_password: bool = False


class IssuedToken(NamedTuple):
    id: str
    expires_at: float | None


class FakeAccounts:
    """An in-memory `AccountService`: bearer tokens, sessions with CSRF tokens, passwords."""

    def __init__(self) -> None:
        self.tokens: dict[str, Principal] = {}
        self.sessions: dict[str, tuple[Principal, str]] = {}
        self.accounts: dict[str, tuple[str, Principal]] = {}
        self.records: dict[str, Account] = {}  # what the account routes manage
        self.token_rows: dict[str, tuple[ApiToken, str]] = {}  # id -> (metadata, secret)
        self.last: Principal | None = None  # the principal `add` registered last

    def add(self, principal: Principal, password: str = PASSWORD) -> str:
        """Register an account; returns a personal token for it."""
        self.accounts[principal.email] = (password, principal)
        self.last = principal
        return self._issue(principal)

    def _issue(self, principal: Principal, expires_at: float | None = None) -> str:
        secret = "svadm-" + secrets.token_hex(16)
        self.tokens[secret] = replace(principal, via="token")
        now = time.time()
        row = ApiToken(
            "tok_" + secrets.token_hex(4),
            principal.account_id,
            "t",
            secret[:12],
            now,
            expires_at or now + 3600,
            None,
            None,
        )
        self.token_rows[row.id] = (row, secret)
        return secret

    def spare_token(self) -> str:
        """The id of a new token of the principal registered last (for revoke requests)."""
        assert self.last is not None
        secret = self._issue(self.last)
        return next(i for i, (_, s) in self.token_rows.items() if s == secret)

    def authenticate(
        self, authorization: str | None, session_cookie: str | None, address: str | None
    ) -> Principal | None:
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            found = self.tokens.get(token) if scheme.lower() == "bearer" else None
            if found is None:
                raise AuthError("invalid token", code="unauthorized")
            return found
        if session_cookie is not None:
            session = self.sessions.get(session_cookie)
            if session is None:
                raise AuthError("session ended", code="unauthorized")
            return session[0]
        return None

    def check_csrf(self, session_cookie: str, csrf_header: str | None) -> bool:
        session = self.sessions.get(session_cookie)
        return (
            session is not None
            and csrf_header is not None
            and hmac.compare_digest(session[1], csrf_header)
        )

    @property
    def authenticator(self) -> FakeAccounts:
        return self

    def login(self, email: str, password: str, address: str | None) -> NewSession:
        found = self.accounts.get(email)
        if found is None or not hmac.compare_digest(found[0], password):
            raise AuthError("wrong email or password", code="unauthorized")
        cookie, csrf = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.sessions[cookie] = (replace(found[1], via="session"), csrf)
        return NewSession(cookie, csrf)

    def logout(self, session_secret: str) -> bool:
        return self.sessions.pop(session_secret, None) is not None

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
        for email, (password, principal) in self.accounts.items():
            if principal.account_id == account_id:
                if not hmac.compare_digest(password.encode(), current.encode()):
                    raise BadRequest("the current password is wrong", code="wrong_password")
                self.accounts[email] = (new, principal)
                return 0
        raise NotFound(f"no account {account_id}")

    def create_token(
        self, account_id: str, name: str, expires_in: float | None, actor: str
    ) -> tuple[IssuedToken, str]:
        principal = next(p for p in self.tokens.values() if p.account_id == account_id)
        expires = None if expires_in is None else time.time() + expires_in
        secret = self._issue(principal, expires)
        return IssuedToken("tok_" + secrets.token_hex(4), expires), secret

    def list_tokens(self, account_id: str | None = None) -> list[ApiToken]:
        rows = [row for row, _ in self.token_rows.values()]
        return [row for row in rows if account_id is None or row.account_id == account_id]

    def get_token(self, token_id: str) -> ApiToken:
        if token_id not in self.token_rows:
            raise NotFound(f"no token {token_id}")
        return self.token_rows[token_id][0]

    def revoke_token(self, token_id: str, actor: str) -> ApiToken:
        row, secret = self.token_rows[token_id]
        if row.revoked_at is not None:
            raise BadRequest("already revoked")
        row = replace(row, revoked_at=time.time())
        self.token_rows[token_id] = (row, secret)
        self.tokens.pop(secret, None)
        return row

    def create_account(
        self, email: str, roles: Any, actor: str, password: str | None = None
    ) -> tuple[Account, str | None]:
        if any(a.email == email for a in self.records.values()):
            raise BadRequest("an account with this email already exists")
        account = Account(
            "acc_" + secrets.token_hex(6),
            email,
            {"*" if p is None else p: r for p, r in roles.items()},
            time.time(),
            actor,
            None,
            None,
            None,
        )
        self.records[account.id] = account
        return account, None if password else "otp-" + secrets.token_urlsafe(12)

    def get_account(self, ref: str) -> Account:
        if ref not in self.records:
            raise NotFound(f"no account {ref}")
        return self.records[ref]

    def list_accounts(self) -> list[Account]:
        return list(self.records.values())

    def set_roles(self, account_id: str, roles: Any, actor: str) -> Account:
        account = replace(self.get_account(account_id), roles=dict(roles))
        self.records[account_id] = account
        return account

    def disable_account(self, account_id: str, actor: str) -> Account:
        account = replace(self.get_account(account_id), disabled_at=time.time(), disabled_by=actor)
        self.records[account_id] = account
        for token, found in list(self.tokens.items()):
            if found.account_id == account_id:
                del self.tokens[token]
        return account

    def enable_account(self, account_id: str, actor: str) -> Account:
        account = replace(self.get_account(account_id), disabled_at=None, disabled_by=None)
        self.records[account_id] = account
        return account


def person(role: str, scope: str) -> Principal:
    """An account with `role` globally ("global") or in project alpha ("own") / beta ("other")."""
    project = {"global": None, "own": "alpha", "other": "beta"}[scope]
    return Principal(f"acc-{role}-{scope}", f"{role}@example.com", {project: role})


DEVELOPER = "account:developer@example.com"  # the actor of every developer principal


@dataclass
class World:
    app: GatewayApp
    client: httpx.AsyncClient
    accounts: FakeAccounts
    keys: dict[str, str] = field(default_factory=dict)  # name -> secret
    key_ids: dict[str, str] = field(default_factory=dict)

    @property
    def services(self) -> Any:
        assert self.app.services is not None
        return self.app.services

    def token(self, principal: Principal) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.accounts.add(principal)}"}

    def new_key(self, name: str, project: str, created_by: str) -> str:
        key, secret = self.services.keyring.create(
            name=name, environment="dev", project=project, created_by=created_by
        )
        self.keys[name], self.key_ids[name] = secret, key.id
        return key.id

    async def chat(self, key_name: str, text: str, user: str = "user-1") -> str:
        response = await self.client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
            headers={
                "Authorization": f"Bearer {self.keys[key_name]}",
                "X-SignalVault-User": user,
            },
        )
        assert response.status_code == 200, response.text
        return response.headers["x-signalvault-request-id"]

    async def chat_in_session(self, key_name: str, text: str, session: str) -> str:
        """The run id of a chat sent with a session (SPEC §7b)."""
        response = await self.client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
            headers={
                "Authorization": f"Bearer {self.keys[key_name]}",
                "X-SignalVault-Session": session,
            },
        )
        assert response.status_code == 200, response.text
        self.services.store.flush()
        record = self.services.store.get_record(response.headers["x-signalvault-request-id"])
        assert record is not None and record["run_id"]
        return str(record["run_id"])

    def records(self, kind: str | None = None) -> list[dict[str, Any]]:
        self.services.store.flush()
        rows = self.services.store.list_records(RecordFilter(), limit=10_000)
        return [r for r in rows if kind is None or r["kind"] == kind]


@contextlib.asynccontextmanager
async def world_for(settings: Any) -> AsyncIterator[World]:
    accounts = FakeAccounts()
    app = create_app(settings, lambda services: accounts)
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield World(app, client, accounts)
    finally:
        await app.shutdown()


@pytest.fixture
async def world(settings: Any, mock: Any) -> AsyncIterator[World]:
    async with world_for(settings) as found:
        found.new_key("dev-alpha", "alpha", DEVELOPER)
        found.new_key("ops-alpha", "alpha", "account:admin@example.com")
        found.new_key("ops-beta", "beta", "account:admin@example.com")
        yield found


# -- the role matrix ------------------------------------------------------------------------------

ALL = frozenset(ROLES)
READ_KEYS = frozenset({"owner", "admin", "auditor", "developer", "viewer"})
# route -> (how its target is scoped, roles allowed). Written out by hand from SPEC §5 so that
# it checks the app's table instead of restating it. Scopes: "public" (no account needed),
# "any" (lists: every principal holding the role somewhere gets a filtered answer), "project"
# (the target is in project alpha: global and alpha roles only), "global" (global roles only).
EXPECTED: dict[tuple[str, str], tuple[str, frozenset[str]]] = {
    ("GET", "/api/openapi.json"): ("public", ALL),
    ("POST", "/api/auth/login"): ("public", ALL),
    ("POST", "/api/auth/logout"): ("any", ALL),
    ("POST", "/api/auth/password"): ("any", ALL),
    ("POST", "/api/tokens"): ("any", ALL),
    ("GET", "/api/tokens"): ("any", ALL),
    ("DELETE", "/api/tokens/{token_id}"): ("any", ALL),
    ("GET", "/api/logs"): ("any", ALL),
    ("GET", "/api/logs/{record_id}"): ("project", ALL),
    ("GET", "/api/traces"): ("any", ALL),
    ("GET", "/api/traces/{run_id}"): ("project", ALL),
    ("GET", "/api/keys"): ("any", READ_KEYS),
    ("POST", "/api/keys"): ("project", frozenset({"owner", "admin", "developer"})),
    ("GET", "/api/keys/{key_id}"): ("project", READ_KEYS),
    ("POST", "/api/keys/{key_id}/revoke"): ("project", frozenset({"owner", "admin", "developer"})),
    ("POST", "/api/keys/{key_id}/rotate"): ("project", frozenset({"owner", "admin", "developer"})),
    ("GET", "/api/providers"): ("global", frozenset({"owner", "admin"})),
    ("PUT", "/api/providers/{name}"): ("global", frozenset({"owner", "admin"})),
    ("GET", "/api/policies"): ("global", ALL - {"developer"}),
    ("GET", "/api/policies/{version}"): ("global", ALL - {"developer"}),
    ("POST", "/api/policies"): ("global", frozenset({"owner", "admin", "security"})),
    ("POST", "/api/policies/{version}/approve"): ("global", frozenset({"owner", "security"})),
    ("POST", "/api/policies/{version}/reject"): ("global", frozenset({"owner", "security"})),
    ("POST", "/api/policies/{version}/rollback"): (
        "global",
        frozenset({"owner", "admin", "security"}),
    ),
    ("GET", "/api/accounts"): ("global", frozenset({"owner"})),
    ("POST", "/api/accounts"): ("global", frozenset({"owner"})),
    ("GET", "/api/accounts/{account_id}"): ("global", frozenset({"owner"})),
    ("PATCH", "/api/accounts/{account_id}"): ("global", frozenset({"owner"})),
    ("GET", "/api/projects"): ("any", ALL),
    ("POST", "/api/projects"): ("global", frozenset({"owner", "admin"})),
    ("GET", "/api/projects/{name:path}"): ("project", ALL),
    ("PATCH", "/api/projects/{name:path}"): ("project", frozenset({"owner", "admin"})),
    ("POST", "/api/audit/verify"): ("global", frozenset({"owner", "auditor"})),
    ("GET", "/api/audit/checkpoints"): ("global", ALL - {"developer"}),
    ("GET", "/api/overview"): ("any", ALL),
    ("POST", "/api/policies/playground"): ("global", ALL - {"developer"}),
    ("GET", "/api/export"): ("project", frozenset({"owner", "auditor"})),
    ("GET", "/api/exports/{export_id}/manifest"): ("project", frozenset({"owner", "auditor"})),
    ("GET", "/api/retention"): ("any", frozenset({"owner", "admin", "auditor"})),
    ("PUT", "/api/retention"): ("project", frozenset({"owner", "admin"})),
    ("GET", "/api/legal-holds"): ("any", frozenset({"owner", "admin", "auditor"})),
    ("POST", "/api/legal-holds"): ("project", frozenset({"owner", "admin"})),
    ("DELETE", "/api/legal-holds/{hold_id}"): ("project", frozenset({"owner", "admin"})),
    ("GET", "/api/subjects/{user}"): ("global", frozenset({"owner", "auditor"})),
    ("DELETE", "/api/subjects/{user}"): ("global", frozenset({"owner", "admin"})),
    ("GET", "/api/settings"): ("global", frozenset({"owner", "admin", "security", "auditor"})),
    ("PATCH", "/api/settings"): ("global", frozenset({"owner", "admin"})),
    ("GET", "/api/incidents"): ("global", ALL - {"developer"}),
    ("GET", "/api/incidents/{incident_id}"): ("global", ALL - {"developer"}),
    ("POST", "/api/incidents/{incident_id}/ack"): (
        "global",
        frozenset({"owner", "admin", "security"}),
    ),
    ("POST", "/api/incidents/{incident_id}/resolve"): (
        "global",
        frozenset({"owner", "admin", "security"}),
    ),
    ("GET", "/api/reports/soc2"): ("global", frozenset({"owner", "admin", "security", "auditor"})),
}

Request = tuple[str, dict[str, Any] | None]  # url, JSON body


def _hold(world: World) -> str:
    owner = Principal("root", "root@example.com", {None: "owner"})
    from signalvault.trail.legal_holds import add_hold

    return add_hold(
        world.services.store, world.services.trail, "project", "alpha", None, owner.actor
    ).id


def _proposal(world: World) -> int:
    """A fresh policy proposal by someone else (its rules differ from every earlier one)."""
    from signalvault.control.policies import PolicyService

    return (
        PolicyService(world.services.store, world.services.trail, review=True)
        .propose(_rules(), "account:root@example.com")
        .version
    )


def _earlier(world: World) -> int:
    """A version that was active once and is not now (version 1 after one approved change)."""
    from signalvault.control.policies import PolicyService

    service = PolicyService(world.services.store, world.services.trail, review=True)
    active = service.active()
    if active is not None and active.version == 1:
        service.approve(_proposal(world), "account:reviewer@example.com")
    return 1


def _rules() -> list[dict[str, Any]]:
    from signalvault.guardrails.policy import DEFAULT_RULES

    word = {
        "detector": "custom",
        "action": "block",
        "options": {"keywords": [secrets.token_hex(6)]},
    }
    return [*(rule.as_dict() for rule in DEFAULT_RULES), {"name": "word", **word}]


def _account(world: World) -> str:
    email = f"{secrets.token_hex(4)}@example.com"
    return world.accounts.create_account(email, {"alpha": "viewer"}, "test")[0].id


def _incident(world: World) -> str:
    """A fresh open incident (a kind of its own, so it joins no other)."""
    event = {"kind": f"matrix_{secrets.token_hex(4)}", "project": "alpha", "request_id": None}
    return world.services.incidents.note(event)[0].id


def _alpha(world: World) -> str:
    """Project alpha, registered (the fixture's keys are made below the registry)."""
    from signalvault.control.projects import ProjectRegistry

    ProjectRegistry(world.services.store, world.services.trail).ensure(
        "alpha", "test", "gateway_key"
    )
    return "alpha"


# How to call each route against a target in project alpha (fresh state for changes).
REQUESTS: dict[tuple[str, str], Callable[[World, dict[str, str]], Request]] = {
    ("GET", "/api/openapi.json"): lambda w, c: ("/api/openapi.json", None),
    ("POST", "/api/auth/login"): lambda w, c: (
        "/api/auth/login",
        {"email": "owner@example.com", "password": PASSWORD},
    ),
    ("POST", "/api/auth/logout"): lambda w, c: ("/api/auth/logout", None),
    ("POST", "/api/auth/password"): lambda w, c: (
        "/api/auth/password",
        {"current_password": PASSWORD, "new_password": PASSWORD + " changed"},
    ),
    ("POST", "/api/tokens"): lambda w, c: ("/api/tokens", {"name": "script"}),
    ("GET", "/api/tokens"): lambda w, c: ("/api/tokens", None),
    ("DELETE", "/api/tokens/{token_id}"): lambda w, c: (
        f"/api/tokens/{w.accounts.spare_token()}",
        None,
    ),
    ("GET", "/api/logs"): lambda w, c: ("/api/logs", None),
    ("GET", "/api/logs/{record_id}"): lambda w, c: (f"/api/logs/{c['record']}", None),
    ("GET", "/api/traces"): lambda w, c: ("/api/traces", None),
    ("GET", "/api/traces/{run_id}"): lambda w, c: (f"/api/traces/{c['run']}", None),
    ("GET", "/api/keys"): lambda w, c: ("/api/keys", None),
    ("POST", "/api/keys"): lambda w, c: (
        "/api/keys",
        {"name": "new", "environment": "dev", "project": "alpha"},
    ),
    ("GET", "/api/keys/{key_id}"): lambda w, c: (f"/api/keys/{w.key_ids['dev-alpha']}", None),
    ("POST", "/api/keys/{key_id}/revoke"): lambda w, c: (
        f"/api/keys/{w.new_key('doomed', 'alpha', DEVELOPER)}/revoke",
        None,
    ),
    ("POST", "/api/keys/{key_id}/rotate"): lambda w, c: (
        f"/api/keys/{w.new_key('rotated', 'alpha', DEVELOPER)}/rotate",
        {"grace_seconds": 60},
    ),
    ("GET", "/api/providers"): lambda w, c: ("/api/providers", None),
    ("PUT", "/api/providers/{name}"): lambda w, c: (
        "/api/providers/openai",
        {"api_key": "sk-matrix-" + secrets.token_hex(8)},
    ),
    ("GET", "/api/policies"): lambda w, c: ("/api/policies", None),
    ("GET", "/api/policies/{version}"): lambda w, c: ("/api/policies/1", None),
    ("POST", "/api/policies"): lambda w, c: ("/api/policies", {"rules": _rules()}),
    ("POST", "/api/policies/{version}/approve"): lambda w, c: (
        f"/api/policies/{_proposal(w)}/approve",
        None,
    ),
    ("POST", "/api/policies/{version}/reject"): lambda w, c: (
        f"/api/policies/{_proposal(w)}/reject",
        {"reason": "no"},
    ),
    ("POST", "/api/policies/{version}/rollback"): lambda w, c: (
        f"/api/policies/{_earlier(w)}/rollback",
        {"reason": "matrix"},
    ),
    ("GET", "/api/accounts"): lambda w, c: ("/api/accounts", None),
    ("POST", "/api/accounts"): lambda w, c: (
        "/api/accounts",
        {"email": f"{secrets.token_hex(4)}@example.com", "roles": {"*": "viewer"}},
    ),
    ("GET", "/api/accounts/{account_id}"): lambda w, c: (f"/api/accounts/{_account(w)}", None),
    ("PATCH", "/api/accounts/{account_id}"): lambda w, c: (
        f"/api/accounts/{_account(w)}",
        {"roles": {"alpha": "developer"}, "disabled": True},
    ),
    ("GET", "/api/projects"): lambda w, c: ("/api/projects", None),
    ("POST", "/api/projects"): lambda w, c: (
        "/api/projects",
        {"name": f"p-{secrets.token_hex(4)}", "description": "matrix"},
    ),
    ("GET", "/api/projects/{name:path}"): lambda w, c: (f"/api/projects/{_alpha(w)}", None),
    ("PATCH", "/api/projects/{name:path}"): lambda w, c: (
        f"/api/projects/{_alpha(w)}",
        {"description": f"matrix {secrets.token_hex(4)}"},
    ),
    ("POST", "/api/audit/verify"): lambda w, c: ("/api/audit/verify", None),
    ("GET", "/api/audit/checkpoints"): lambda w, c: ("/api/audit/checkpoints", None),
    ("GET", "/api/overview"): lambda w, c: ("/api/overview?period=1h", None),
    ("POST", "/api/policies/playground"): lambda w, c: (
        "/api/policies/playground",
        {"rules": _rules(), "text": "mail jane@example.com"},
    ),
    ("GET", "/api/export"): lambda w, c: ("/api/export?project=alpha", None),
    ("GET", "/api/exports/{export_id}/manifest"): lambda w, c: (
        f"/api/exports/{c['export']}/manifest",
        None,
    ),
    ("GET", "/api/retention"): lambda w, c: ("/api/retention", None),
    ("PUT", "/api/retention"): lambda w, c: ("/api/retention", {"projects": {"alpha": 30}}),
    ("GET", "/api/legal-holds"): lambda w, c: ("/api/legal-holds", None),
    ("POST", "/api/legal-holds"): lambda w, c: (
        "/api/legal-holds",
        {"scope": "project", "value": "alpha", "reason": "case 7"},
    ),
    ("DELETE", "/api/legal-holds/{hold_id}"): lambda w, c: (f"/api/legal-holds/{_hold(w)}", None),
    ("GET", "/api/subjects/{user}"): lambda w, c: ("/api/subjects/user-1", None),
    ("DELETE", "/api/subjects/{user}"): lambda w, c: ("/api/subjects/nobody", None),
    ("GET", "/api/incidents"): lambda w, c: ("/api/incidents", None),
    ("GET", "/api/incidents/{incident_id}"): lambda w, c: (f"/api/incidents/{_incident(w)}", None),
    ("POST", "/api/incidents/{incident_id}/ack"): lambda w, c: (
        f"/api/incidents/{_incident(w)}/ack",
        {"note": "looking"},
    ),
    ("POST", "/api/incidents/{incident_id}/resolve"): lambda w, c: (
        f"/api/incidents/{_incident(w)}/resolve",
        {"note": "done"},
    ),
    ("GET", "/api/reports/soc2"): lambda w, c: ("/api/reports/soc2?since=1d", None),
    ("GET", "/api/settings"): lambda w, c: ("/api/settings", None),
    ("PATCH", "/api/settings"): lambda w, c: (
        "/api/settings",
        {"accounts.login_max_failures": 5},
    ),
}


async def targets(world: World) -> dict[str, str]:
    """Ids REQUESTS needs that only traffic can make: a record, a run and a finished export."""
    context = {"record": await world.chat("dev-alpha", "hello from alpha")}
    context["run"] = await world.chat_in_session("dev-alpha", "a run in alpha", "matrix-run")
    exported = await world.client.get(
        "/api/export?project=alpha", headers=world.token(person("owner", "global"))
    )
    context["export"] = exported.headers["x-signalvault-export-id"]
    return context


def is_expected(route: tuple[str, str], role: str, scope: str) -> bool:
    kind, roles = EXPECTED[route]
    if kind == "public":
        return True
    if role not in roles:
        return False
    return kind == "any" or scope == "global" or (kind == "project" and scope == "own")


def test_every_route_has_an_access_rule_and_an_expectation(settings: Any) -> None:
    from signalvault.control.services import open_services

    services = open_services(settings)
    try:
        routes = set(route_keys(create_admin_api(services, settings)))
    finally:
        services.store.close()
    assert routes == set(ROUTE_PERMISSIONS), "routes and the permission table differ"
    assert routes == set(EXPECTED) == set(REQUESTS), "a route lacks a matrix expectation"


async def test_role_matrix_over_every_route_role_and_project(world: World) -> None:
    context = await targets(world)
    routes = route_keys(world.app.admin_api())
    assert set(routes) == set(EXPECTED)
    failures = []
    for route in routes:
        method, _ = route
        for role in ROLES:
            for scope in ("global", "own", "other"):
                headers = world.token(person(role, scope))
                url, body = REQUESTS[route](world, context)
                response = await world.client.request(method, url, json=body, headers=headers)
                allowed = response.status_code < 400
                if response.status_code >= 500 or allowed != is_expected(route, role, scope):
                    failures.append(f"{method} {url} {role}/{scope}: {response.status_code}")
                if not allowed:
                    assert response.status_code in (403, 404), response.text
                    assert set(response.json()["error"]) == {"message", "code"}
    assert not failures, "\n".join(failures)


async def test_a_one_time_password_opens_only_the_password_change_and_logout(
    world: World,
) -> None:
    """Whatever the role, until the generated password is changed every other route is 403."""
    context = await targets(world)
    open_routes = {("POST", "/api/auth/password"), ("POST", "/api/auth/logout")}
    for route in route_keys(world.app.admin_api()):
        if EXPECTED[route][0] == "public":
            continue
        owner = replace(person("owner", "global"), must_change_password=True)
        url, body = REQUESTS[route](world, context)
        response = await world.client.request(route[0], url, json=body, headers=world.token(owner))
        if route in open_routes:
            assert response.status_code == 200, (route, response.text)
        else:
            assert response.status_code == 403, (route, response.text)
            assert response.json()["error"]["code"] == "password_change_required"


async def test_a_route_without_a_rule_is_refused(world: World) -> None:
    api = world.app.admin_api()

    @api.get("/api/unruled")
    def unruled() -> dict[str, str]:
        return {"secret": "should never be served"}

    headers = world.token(person("owner", "global"))
    response = await world.client.get("/api/unruled", headers=headers)
    assert response.status_code == 403
    assert "should never" not in response.text


# -- project scoping and "own" ---------------------------------------------------------------


async def test_lists_return_only_what_the_principal_may_see(world: World) -> None:
    mine = await world.chat("dev-alpha", "mine")
    theirs = await world.chat("ops-alpha", "theirs")
    beta = await world.chat("ops-beta", "beta")

    async def ids(principal: Principal) -> set[str]:
        response = await world.client.get("/api/logs?limit=200", headers=world.token(principal))
        assert response.status_code == 200
        return {row["id"] for row in response.json()["data"]}

    assert await ids(person("developer", "own")) == {mine}
    assert await ids(person("developer", "global")) == {mine}
    viewer_alpha = await ids(person("viewer", "own"))
    assert {mine, theirs} <= viewer_alpha and beta not in viewer_alpha
    assert {mine, theirs, beta} <= await ids(person("viewer", "global"))
    # A project role overrides the global one for that project.
    mixed = Principal("m", "developer@example.com", {None: "viewer", "alpha": "developer"})
    seen = await ids(mixed)
    assert mine in seen and beta in seen and theirs not in seen

    response = await world.client.get("/api/keys", headers=world.token(person("developer", "own")))
    assert [k["id"] for k in response.json()["data"]] == [world.key_ids["dev-alpha"]]
    response = await world.client.get("/api/keys", headers=world.token(person("admin", "other")))
    assert [k["id"] for k in response.json()["data"]] == [world.key_ids["ops-beta"]]


async def test_pagination_walks_every_visible_record_once(world: World) -> None:
    made = [await world.chat("ops-alpha", f"message {n}") for n in range(7)]
    headers = world.token(person("viewer", "own"))
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        url = "/api/logs?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await world.client.get(url, headers=headers)).json()
        assert len(page["data"]) <= 3
        seen += [row["id"] for row in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert cursor is None
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen, reverse=True)
    assert set(made) <= set(seen)
    assert all(r["project"] == "alpha" for r in world.records() if r["id"] in seen)


async def test_a_narrow_role_reads_only_its_own_records_from_the_store(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A global developer sees its keys' traffic only: the query must not wade through everyone
    else's records (which would cost a page of reads per page of others' traffic)."""
    mine = [await world.chat("dev-alpha", f"mine {n}") for n in range(2)]
    for n in range(600):
        world.services.trail.record_event("admin", "account:other@example.com", {"n": n})
    store = world.services.store
    read: list[int] = []
    list_records = store.list_records

    def counting(where: RecordFilter, limit: int = 50) -> list[dict[str, Any]]:
        rows = list_records(where, limit)
        read.append(len(rows))
        return rows

    monkeypatch.setattr(store, "list_records", counting)
    for principal, expected in (
        (person("developer", "global"), set(mine)),
        (
            Principal("acc-mixed", "developer@example.com", {None: "developer", "beta": "viewer"}),
            set(mine),
        ),
    ):
        read.clear()
        page = (await world.client.get("/api/logs?limit=50", headers=world.token(principal))).json()
        assert {row["id"] for row in page["data"]} >= expected
        assert page["next_cursor"] is None
        assert sum(read) < 50, f"read {sum(read)} rows for {len(page['data'])} visible ones"
    viewer = (
        await world.client.get(
            "/api/logs?limit=50",
            headers=world.token(
                Principal("acc-v", "viewer@example.com", {None: "viewer", "alpha": "developer"})
            ),
        )
    ).json()
    assert len(viewer["data"]) == 50  # a global reader still pages through everything


# -- content reads -------------------------------------------------------------------------------


async def test_content_read_is_audited_and_only_for_roles_that_may_read_it(world: World) -> None:
    record = await world.chat("dev-alpha", "the quarterly numbers")
    for role in ROLES:
        before = len(world.records("content_read"))
        response = await world.client.get(
            f"/api/logs/{record}?content=true", headers=world.token(person(role, "own"))
        )
        reads = world.records("content_read")
        if role in ("owner", "auditor"):
            assert response.status_code == 200
            assert "the quarterly numbers" in response.json()["prompt"]
            assert len(reads) == before + 1
            assert reads[0]["actor"] == f"account:{role}@example.com"
            assert orjson.loads(reads[0]["details"]) == {"record": record}
        else:
            assert response.status_code in (403, 404)
            assert "quarterly" not in response.text
            assert len(reads) == before
    # Metadata only without the flag, for everyone allowed to see the record.
    response = await world.client.get(
        f"/api/logs/{record}", headers=world.token(person("viewer", "own"))
    )
    assert response.status_code == 200 and response.json()["prompt"] is None
    # An auditor of another project cannot even see it.
    response = await world.client.get(
        f"/api/logs/{record}?content=true", headers=world.token(person("auditor", "other"))
    )
    assert response.status_code == 404


async def test_content_is_not_returned_when_the_read_cannot_be_audited(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = await world.chat("dev-alpha", "confidential plan")

    def broken(*args: Any, **kwargs: Any) -> str:
        raise StoreError("disk full")

    monkeypatch.setattr(world.services.trail, "record_event", broken)
    response = await world.client.get(
        f"/api/logs/{record}?content=true", headers=world.token(person("owner", "global"))
    )
    assert response.status_code == 503
    assert "confidential" not in response.text
    assert response.json()["error"]["code"] == "audit_store_unavailable"


# -- sessions, CSRF and error shapes -------------------------------------------------------------


async def login(world: World, principal: Principal) -> tuple[str, str]:
    world.accounts.add(principal)
    response = await world.client.post(
        "/api/auth/login", json={"email": principal.email, "password": PASSWORD}
    )
    assert response.status_code == 200
    set_cookie = response.headers["set-cookie"]
    assert "httponly" in set_cookie.lower() and "secure" in set_cookie.lower()
    assert "samesite=strict" in set_cookie.lower()
    return response.cookies[SESSION_COOKIE], response.json()["csrf_token"]


async def test_session_changes_need_the_csrf_token_and_tokens_do_not(world: World) -> None:
    cookie, csrf = await login(world, person("admin", "global"))
    world.client.cookies.clear()
    jar = {"cookie": f"{SESSION_COOKIE}={cookie}"}
    body = {"name": "k", "environment": "dev", "project": "alpha"}
    for headers in (jar, {**jar, "X-CSRF-Token": "forged"}):
        response = await world.client.post("/api/keys", json=body, headers=headers)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "csrf_failed"
    assert (await world.client.get("/api/keys", headers=jar)).status_code == 200
    ok = await world.client.post("/api/keys", json=body, headers={**jar, "X-CSRF-Token": csrf})
    assert ok.status_code == 201
    token = await world.client.post(
        "/api/tokens", json={"name": "ci"}, headers={**jar, "X-CSRF-Token": csrf}
    )
    assert token.status_code == 201
    secret = token.json()["token"]
    by_token = await world.client.post(
        "/api/keys", json=body, headers={"Authorization": f"Bearer {secret}"}
    )
    assert by_token.status_code == 201
    out = await world.client.post("/api/auth/logout", headers={**jar, "X-CSRF-Token": csrf})
    assert out.status_code == 200
    assert (await world.client.get("/api/keys", headers=jar)).status_code == 401


async def test_errors_have_one_shape_and_never_echo_input(world: World) -> None:
    cases = [
        (await world.client.get("/api/logs"), 401, "unauthorized"),
        (
            await world.client.get("/api/logs", headers={"Authorization": "Bearer svadm-nope"}),
            401,
            "unauthorized",
        ),
        (
            await world.client.post(
                "/api/audit/verify", headers=world.token(person("viewer", "global"))
            ),
            403,
            "forbidden",
        ),
        (
            await world.client.get(
                "/api/logs/nope", headers=world.token(person("owner", "global"))
            ),
            404,
            "not_found",
        ),
        (await world.client.get("/api/no-such-thing"), 404, "not_found"),
        (
            await world.client.post(
                "/api/auth/login", json={"email": "", "password": "hunter2-very-secret"}
            ),
            422,
            "validation_error",
        ),
        (
            await world.client.post(
                "/api/auth/login", json={"email": "owner@example.com", "password": "wrong-pass"}
            ),
            401,
            "unauthorized",
        ),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        assert response.json() == {
            "error": {"message": response.json()["error"]["message"], "code": code}
        }
        assert "hunter2" not in response.text and "wrong-pass" not in response.text
        assert "Traceback" not in response.text


async def test_without_an_account_service_everyone_is_refused(settings: Any, mock: Any) -> None:
    app = create_app(settings)
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            assert (await client.get("/api/logs")).status_code == 401
            bad = await client.get("/api/logs", headers={"Authorization": "Bearer x"})
            assert bad.status_code == 401
            login = await client.post("/api/auth/login", json={"email": "a", "password": "b"})
            assert login.status_code == 401
    finally:
        await app.shutdown()


# -- keys, retention, holds, subjects, export ----------------------------------------------------


# Routes whose changes the fake account service makes here: the real service's audit records
# are checked in tests/test_admin_api_accounts.py and tests/test_accounts.py.
FAKE_ACCOUNT_ROUTES = ("/api/auth/", "/api/tokens", "/api/accounts")
READ_ONLY_POSTS = {("POST", "/api/policies/playground")}  # judges a text; stores nothing


async def test_every_state_change_leaves_an_audit_record_naming_its_actor(world: World) -> None:
    """Walks every state-changing route of the app (a new one is covered without being listed
    here): done by an owner, each adds a record to the trail naming that owner."""
    context = await targets(world)
    owner = person("owner", "global")
    changes = [
        (method, path)
        for method, path in route_keys(world.app.admin_api())
        if method != "GET"
        and (method, path) not in READ_ONLY_POSTS
        and not path.startswith(FAKE_ACCOUNT_ROUTES)
    ]
    assert len(changes) >= 10
    unaudited = []
    for method, path in changes:
        url, body = REQUESTS[(method, path)](world, context)
        before = {r["id"] for r in world.records()}
        response = await world.client.request(method, url, json=body, headers=world.token(owner))
        assert response.status_code < 400, f"{method} {url}: {response.text}"
        new = [r for r in world.records() if r["id"] not in before]
        if not any(r["actor"] == owner.actor for r in new):
            unaudited.append(f"{method} {path}")
    assert not unaudited, f"changes without an audit record: {unaudited}"


async def test_key_lifecycle_is_audited_without_secrets(world: World) -> None:
    headers = world.token(person("developer", "own"))
    created = await world.client.post(
        "/api/keys",
        json={"name": "mine", "environment": "dev", "project": "alpha", "models": ["gpt-*"]},
        headers=headers,
    )
    assert created.status_code == 201
    key = created.json()
    secret = key["secret"]
    assert secret.startswith("sv-dev-") and key["created_by"] == DEVELOPER
    world.keys["mine"], world.key_ids["mine"] = secret, key["id"]
    await world.chat("mine", "works")
    shown = await world.client.get(f"/api/keys/{key['id']}", headers=headers)
    assert secret not in shown.text and shown.json()["status"] == "active"
    revoked = await world.client.post(f"/api/keys/{key['id']}/revoke", headers=headers)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    again = await world.client.post(f"/api/keys/{key['id']}/revoke", headers=headers)
    assert again.status_code == 409
    refused = await world.client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert refused.status_code == 401
    events = [orjson.loads(r["details"]) for r in world.records("admin")]
    actions = [(e["action"], e["target"]) for e in events]
    assert ("key.create", key["id"]) in actions and ("key.revoke", key["id"]) in actions
    revoke = next(e for e in events if e["action"] == "key.revoke")
    assert revoke["before"]["status"] == "active" and revoke["after"]["status"] == "revoked"
    assert all(r["actor"] == DEVELOPER for r in world.records("admin"))
    database = (world.app.settings.store.data_dir / "signalvault.db").read_bytes()
    assert secret.encode() not in database
    # Someone else's key in the same project: a developer may neither see nor revoke it.
    other = world.key_ids["ops-alpha"]
    assert (
        await world.client.post(f"/api/keys/{other}/revoke", headers=headers)
    ).status_code == 404


async def test_no_secret_or_ciphertext_in_any_metadata_response(world: World) -> None:
    record = await world.chat("dev-alpha", "sensitive-prompt-text")
    headers = world.token(person("owner", "global"))
    bodies = [
        (await world.client.get(url, headers=headers)).text
        for url in (
            "/api/logs?limit=200",
            f"/api/logs/{record}",
            "/api/keys",
            f"/api/keys/{world.key_ids['dev-alpha']}",
            "/api/export",
            "/api/retention",
            "/api/legal-holds",
        )
    ]
    row = world.services.store.get_record(record)
    for body in bodies:
        assert "sensitive-prompt-text" not in body and "hi there" not in body
        for name, secret in world.keys.items():
            assert secret not in body, name
        for column in ("prompt_ct", "response_ct", "secret_hash", "wrapped"):
            assert column not in body
        assert row["prompt_ct"].hex() not in body


async def test_export_streams_filters_and_audits_content(world: World) -> None:
    await world.chat("dev-alpha", "alpha words")
    await world.chat("ops-beta", "beta words")
    auditor_alpha = world.token(person("auditor", "own"))
    assert (await world.client.get("/api/export", headers=auditor_alpha)).status_code == 403
    response = await world.client.get(
        "/api/export?project=alpha&include_content=true&format=jsonl", headers=auditor_alpha
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in response.content.splitlines()]
    assert lines and all(line["project"] == "alpha" for line in lines)
    assert any("alpha words" in (line.get("prompt") or "") for line in lines)
    assert "beta words" not in response.text
    events = world.records("content_export")
    assert len(events) == 1 and events[0]["actor"] == "account:auditor@example.com"
    csv = await world.client.get(
        "/api/export?format=csv", headers=world.token(person("owner", "global"))
    )
    assert csv.status_code == 200 and "id" in csv.text.splitlines()[0].split(",")
    assert "alpha words" not in csv.text
    bad = await world.client.get(
        "/api/export?since=yesterday", headers=world.token(person("owner", "global"))
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"


async def test_api_exports_leave_a_signed_manifest_that_verifies_the_file(
    world: World, tmp_path: Path
) -> None:
    from signalvault.trail.export import manifest as manifests

    for n in range(3):
        await world.chat("dev-alpha", f"alpha words {n}")
    auditor_alpha = world.token(person("auditor", "own"))
    checked = []
    for query in ("project=alpha&format=csv", "project=alpha&format=json&include_content=true"):
        before = [r for r in world.records() if r["project"] == "alpha"]
        response = await world.client.get(f"/api/export?{query}", headers=auditor_alpha)
        assert response.status_code == 200
        export_id = response.headers["x-signalvault-export-id"]
        found = await world.client.get(f"/api/exports/{export_id}/manifest", headers=auditor_alpha)
        assert found.status_code == 200, found.text
        manifest = found.json()
        # Everything in alpha when the export ran (a content export's own record included).
        expected = len(before) + ("include_content" in query)
        assert manifest["record_count"] == expected and manifest["filters"]["project"] == "alpha"
        assert manifest["record_kinds"]["interaction"] == 3
        assert (manifest["audit_record_id"] is not None) == ("include_content" in query)
        export_file = tmp_path / f"export-{len(checked)}"
        export_file.write_bytes(response.content)
        manifest_file = manifests.manifest_path(export_file)
        manifest_file.write_bytes(found.content)
        loaded = manifests.load(manifest_file)
        checks = [manifests.check_signature(loaded), *manifests.check_file(loaded, export_file)]
        assert all(check.is_ok for check in checks), checks
        export_file.write_bytes(response.content.replace(b"alpha", b"omega", 1))
        assert not all(c.is_ok for c in manifests.check_file(loaded, export_file))
        checked.append(export_id)
    # The manifest is evidence in the trail; callers who could not export cannot read it.
    assert {r["id"] for r in world.records("export_manifest")} == set(checked)
    for role, scope in (("auditor", "other"), ("viewer", "global"), ("admin", "own")):
        denied = await world.client.get(
            f"/api/exports/{checked[0]}/manifest", headers=world.token(person(role, scope))
        )
        assert denied.status_code in (403, 404)
    record = world.records("interaction")[0]["id"]
    not_export = await world.client.get(
        f"/api/exports/{record}/manifest", headers=world.token(person("owner", "global"))
    )
    assert not_export.status_code == 404


async def test_subject_export_manifest_names_the_subject_and_verifies(
    world: World, tmp_path: Path
) -> None:
    from signalvault.trail.export import manifest as manifests

    await world.chat("dev-alpha", "about me", user="subject-7")
    await world.chat("dev-alpha", "about someone else", user="user-1")
    owner = world.token(person("owner", "global"))
    response = await world.client.get("/api/subjects/subject-7?format=jsonl", headers=owner)
    assert response.status_code == 200 and "about someone else" not in response.text
    found = await world.client.get(
        f"/api/exports/{response.headers['x-signalvault-export-id']}/manifest", headers=owner
    )
    manifest = found.json()
    assert manifest["kind"] == "subject_export" and manifest["subject"]["user"] == "subject-7"
    assert manifest["record_count"] == 1 + 1  # the interaction and the export's own record
    export_file = tmp_path / "subject.jsonl"
    export_file.write_bytes(response.content)
    assert all(c.is_ok for c in manifests.check_file(manifest, export_file))
    assert manifests.check_signature(manifest).is_ok


async def test_retention_holds_and_erasure(world: World) -> None:
    owner = world.token(person("owner", "global"))
    admin_alpha = world.token(person("admin", "own"))
    put = await world.client.put(
        "/api/retention", json={"projects": {"alpha": 30}}, headers=admin_alpha
    )
    assert put.status_code == 200 and put.json()["projects"] == {"alpha": 30}
    refused = await world.client.put(
        "/api/retention", json={"default_days": 5}, headers=admin_alpha
    )
    assert refused.status_code == 403
    change = next(orjson.loads(r["details"]) for r in world.records("admin"))
    assert change["action"] == "retention.update"
    assert change["before"]["projects"] == {} and change["after"]["projects"] == {"alpha": 30}

    await world.chat("dev-alpha", "about the user", user="erin")
    hold = await world.client.post(
        "/api/legal-holds", json={"scope": "user", "value": "erin"}, headers=owner
    )
    assert hold.status_code == 201
    blocked = await world.client.delete("/api/subjects/erin", headers=owner)
    assert blocked.status_code == 409 and blocked.json()["error"]["code"] == "legal_hold"
    subject = await world.client.get("/api/subjects/erin", headers=owner)
    assert subject.status_code == 200 and "about the user" in subject.text
    assert world.records("subject_export")
    released = await world.client.delete(f"/api/legal-holds/{hold.json()['id']}", headers=owner)
    assert released.status_code == 200 and released.json()["status"] == "released"
    erased = await world.client.delete("/api/subjects/erin", headers=owner)
    assert erased.status_code == 200 and erased.json()["records"] >= 1
    assert "erin" not in erased.text
    after = await world.client.get("/api/subjects/erin", headers=owner)
    assert "about the user" not in after.text


async def test_verify_reports_an_intact_trail(world: World) -> None:
    await world.chat("dev-alpha", "sealed soon")
    world.services.store.flush()
    world.services.sealer.seal()
    response = await world.client.post(
        "/api/audit/verify", headers=world.token(person("auditor", "global"))
    )
    assert response.status_code == 200
    assert response.json()["status"] == "intact" and response.json()["tree_size"] >= 1


async def test_a_key_whose_issue_cannot_be_audited_is_revoked(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> str:
        raise StoreError("disk full")

    monkeypatch.setattr(world.services.trail, "record_event", broken)
    response = await world.client.post(
        "/api/keys",
        json={"name": "unaudited", "environment": "dev", "project": "alpha"},
        headers=world.token(person("owner", "global")),
    )
    assert response.status_code == 503 and "sv-dev-" not in response.text
    keys = [k for k in world.services.store.list_keys() if k.name == "unaudited"]
    assert len(keys) == 1 and keys[0].revoked_at is not None
