"""The admin API's account, key rotation, provider credential and policy routes on the real
account store and services, as `serve` wires them; traffic goes through /v1 to the mock."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from signalvault.app import GatewayApp
from signalvault.control.accounts.service import AccountService
from signalvault.gateway.keyring import EVENT_KIND
from signalvault.guardrails.policy import DEFAULT_RULES
from signalvault.store import RecordFilter

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple 9"
CODENAME = "bluepelican"


@dataclass
class Api:
    app: GatewayApp
    accounts: AccountService
    http: httpx.AsyncClient

    def token(self, email: str, roles: dict[str | None, str]) -> dict[str, str]:
        account, _ = self.accounts.create_account(email, roles, "test", PASSWORD)
        secret = self.accounts.create_token(account.id, "t", None, "test")[1]
        return {"Authorization": f"Bearer {secret}"}

    async def chat(self, key: str, text: str = "hi") -> httpx.Response:
        return await self.http.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
            headers={"Authorization": f"Bearer {key}"},
        )

    def database_bytes(self) -> bytes:
        assert self.app.services is not None
        self.app.services.store.flush()
        data = self.app.settings.store.data_dir
        return b"".join(p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file())

    def trail(self, kind: str) -> list[dict[str, Any]]:
        assert self.app.services is not None
        self.app.services.store.flush()
        rows = self.app.services.store.list_records(RecordFilter(), limit=10_000)
        found = [r for r in rows if r["kind"] == kind]
        for r in found:
            if isinstance(r.get("details"), (str, bytes)):
                r["details"] = orjson.loads(r["details"])
        return found


@pytest.fixture
async def api(gateway: GatewayApp, mock: Any) -> AsyncIterator[Api]:
    assert gateway.services is not None
    accounts = gateway.accounts(gateway.services)
    assert isinstance(accounts, AccountService)
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="https://gateway") as http:
        yield Api(gateway, accounts, http)


async def test_account_create_shows_the_password_once_and_disable_ends_access(api: Api) -> None:
    owner = api.token("owner@example.com", {None: "owner"})
    made = await api.http.post(
        "/api/accounts",
        json={"email": "Ana@Example.com", "roles": {"alpha": "auditor"}},
        headers=owner,
    )
    assert made.status_code == 201, made.text
    body = made.json()
    password = body["one_time_password"]
    assert body["email"] == "ana@example.com" and body["roles"] == {"alpha": "auditor"}
    assert body["must_change_password"] is True and len(password) >= 12
    account_id = body["id"]
    # Never again, and never a hash: not in reads, lists, or the stored bytes.
    for url in (f"/api/accounts/{account_id}", "/api/accounts"):
        read = await api.http.get(url, headers=owner)
        assert read.status_code == 200
        assert password not in read.text and "argon2" not in read.text.lower()
        assert "one_time_password" not in read.text
    assert password.encode() not in api.database_bytes()
    # The one-time password signs in, to choose a password of her own.
    login = await api.http.post(
        "/api/auth/login", json={"email": "ana@example.com", "password": password}
    )
    assert login.status_code == 200 and login.json()["must_change_password"] is True
    changed = await api.http.post(
        "/api/auth/password",
        json={"current_password": password, "new_password": PASSWORD},
        headers={"X-CSRF-Token": login.json()["csrf_token"]},
    )
    assert changed.status_code == 200
    api.http.cookies.clear()
    read = await api.http.get(f"/api/accounts/{account_id}", headers=owner)
    assert read.json()["must_change_password"] is False

    # Only owners manage accounts.
    ana = {"Authorization": f"Bearer {api.accounts.create_token(account_id, 't', None, 'x')[1]}"}
    assert (await api.http.get("/api/accounts", headers=ana)).status_code == 403
    admin = api.token("adm@example.com", {None: "admin"})
    assert (await api.http.get("/api/accounts", headers=admin)).status_code == 403
    assert (await api.http.get("/api/logs", headers=ana)).status_code == 200

    changed = await api.http.patch(
        f"/api/accounts/{account_id}",
        json={"roles": {"*": "viewer"}, "disabled": True},
        headers=owner,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["disabled"] is True and changed.json()["roles"] == {"*": "viewer"}
    # Its very next request is refused, with the token issued before.
    assert (await api.http.get("/api/logs", headers=ana)).status_code == 401
    kinds = [r["details"]["account"] for r in api.trail("account_disabled")]
    assert kinds == [account_id]
    # Bad input: a clear error, nothing changed.
    bad = await api.http.patch(
        f"/api/accounts/{account_id}", json={"roles": {"*": "emperor"}}, headers=owner
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"]
    missing = await api.http.get("/api/accounts/acc_nope", headers=owner)
    assert missing.status_code == 404
    # The last owner cannot be disabled.
    me = api.accounts.get_account("owner@example.com").id
    last = await api.http.patch(
        f"/api/accounts/{me}", json={"roles": {"*": "viewer"}, "disabled": True}, headers=owner
    )
    assert last.status_code == 400
    assert api.accounts.get_account(me).roles == {"*": "owner"}
    # Roles refused (owner is global only): not disabled either.
    refused = await api.http.patch(
        f"/api/accounts/{account_id}",
        json={"roles": {"alpha": "owner"}, "disabled": False},
        headers=owner,
    )
    assert refused.status_code == 400
    assert api.accounts.get_account(account_id).is_disabled
    enabled = await api.http.patch(
        f"/api/accounts/{account_id}", json={"disabled": False}, headers=owner
    )
    assert enabled.json()["disabled"] is False


async def test_rotate_returns_a_new_secret_and_the_old_works_during_grace(api: Api) -> None:
    dev = api.token("dev@example.com", {"alpha": "developer"})
    other = api.token("dev2@example.com", {"alpha": "developer"})
    made = await api.http.post(
        "/api/keys", json={"name": "app", "environment": "dev", "project": "alpha"}, headers=dev
    )
    key_id, old = made.json()["id"], made.json()["secret"]
    # A developer rotates only their own keys (others' are not even visible).
    refused = await api.http.post(f"/api/keys/{key_id}/rotate", json={}, headers=other)
    assert refused.status_code == 404
    rotated = await api.http.post(
        f"/api/keys/{key_id}/rotate", json={"grace_seconds": 3600}, headers=dev
    )
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    new = body["secret"]
    assert new != old and body["id"] == key_id and body["grace_until"]
    assert body["previous_prefix"] == made.json()["prefix"] and new.startswith(body["prefix"])
    assert (await api.chat(new)).status_code == 200
    assert (await api.chat(old)).status_code == 200  # still in grace
    events = [r for r in api.trail(EVENT_KIND) if r["details"].get("action") == "rotate"]
    assert [(e["actor"], e["details"]["key_id"]) for e in events] == [
        ("account:dev@example.com", key_id)
    ]
    assert new.encode() not in api.database_bytes()
    # Rotating again with no grace ends the previous secret at once.
    again = await api.http.post(
        f"/api/keys/{key_id}/rotate", json={"grace_seconds": 0}, headers=dev
    )
    assert again.status_code == 200
    assert (await api.chat(new)).status_code == 401
    assert (await api.chat(again.json()["secret"])).status_code == 200
    revoked = await api.http.post(f"/api/keys/{key_id}/revoke", headers=dev)
    assert revoked.status_code == 200
    late = await api.http.post(f"/api/keys/{key_id}/rotate", json={}, headers=dev)
    assert late.status_code == 409


async def test_provider_credential_is_masked_and_used_upstream(api: Api, mock: Any) -> None:
    admin = api.token("adm@example.com", {None: "admin"})
    stored = "sk-stored-" + secrets.token_hex(12)
    put = await api.http.put("/api/providers/openai", json={"api_key": stored}, headers=admin)
    assert put.status_code == 200, put.text
    assert stored not in put.text and put.json()["masked"] == "****" + stored[-4:]
    listed = await api.http.get("/api/providers", headers=admin)
    assert [c["provider"] for c in listed.json()["data"]] == ["openai"]
    assert stored not in listed.text
    assert stored.encode() not in api.database_bytes()
    key = api.app.services.keyring.create(name="app", environment="dev")[1]  # type: ignore[union-attr]
    assert (await api.chat(key)).status_code == 200
    assert mock.recent_requests(1)[0]["headers"]["authorization"] == f"Bearer {stored}"
    # Unknown provider, bad secret: refused without quoting the secret, nothing stored.
    unknown = await api.http.put("/api/providers/nope", json={"api_key": stored}, headers=admin)
    assert unknown.status_code == 400 and stored not in unknown.text
    spaced = "sk has spaces " + secrets.token_hex(4)
    bad = await api.http.put("/api/providers/openai", json={"api_key": spaced}, headers=admin)
    assert bad.status_code == 400 and spaced not in bad.text
    assert (await api.chat(key)).status_code == 200
    assert mock.recent_requests(1)[0]["headers"]["authorization"] == f"Bearer {stored}"
    viewer = api.token("v@example.com", {None: "viewer"})
    assert (await api.http.get("/api/providers", headers=viewer)).status_code == 403


def codename_rules() -> list[dict[str, Any]]:
    rule = {
        "name": "no-codename",
        "detector": "custom",
        "action": "block",
        "direction": "input",
        "options": {"keywords": [CODENAME]},
    }
    return [*(r.as_dict() for r in DEFAULT_RULES), rule]


async def test_policy_applies_only_after_a_second_account_approves(api: Api) -> None:
    admin = api.token("adm@example.com", {None: "admin"})
    security = api.token("sec@example.com", {None: "security"})
    key = api.app.services.keyring.create(name="app", environment="dev")[1]  # type: ignore[union-attr]
    proposed = await api.http.post(
        "/api/policies",
        json={"rules": codename_rules(), "reason": "block the codename"},
        headers=admin,
    )
    assert proposed.status_code == 201, proposed.text
    version = proposed.json()["version"]
    assert proposed.json()["status"] == "proposed"
    assert (await api.chat(key, f"about {CODENAME}")).status_code == 200  # not in force

    detail = await api.http.get(f"/api/policies/{version}", headers=security)
    assert detail.status_code == 200
    changes = detail.json()["diff"]["changes"]
    assert changes == [{"name": "no-codename", "change": "added", "fields": []}]
    # Admins propose but do not approve; nobody approves their own proposal.
    assert (
        await api.http.post(f"/api/policies/{version}/approve", headers=admin)
    ).status_code == 403
    selfish = api.token("sec2@example.com", {None: "security"})
    own = await api.http.post(
        "/api/policies",
        json={
            "rules": [*codename_rules(), {"name": "more", "detector": "secrets", "action": "block"}]
        },
        headers=selfish,
    )
    assert own.status_code == 201, own.text
    self_approval = await api.http.post(
        f"/api/policies/{own.json()['version']}/approve", headers=selfish
    )
    assert self_approval.status_code == 403
    assert self_approval.json()["error"]["code"] == "self_approval"
    assert (await api.chat(key, f"about {CODENAME}")).status_code == 200

    approved = await api.http.post(f"/api/policies/{version}/approve", headers=security)
    assert approved.status_code == 200 and approved.json()["status"] == "active"
    blocked = await api.chat(key, f"about {CODENAME}")  # the very next request
    assert blocked.status_code == 400
    assert blocked.json()["error"]["code"] == "guardrail_violation"
    listed = (await api.http.get("/api/policies", headers=security)).json()
    assert listed["active_version"] == version
    # Deciding twice conflicts; rejecting closes the other proposal.
    twice = await api.http.post(f"/api/policies/{version}/approve", headers=security)
    assert twice.status_code == 409
    rejected = await api.http.post(
        f"/api/policies/{own.json()['version']}/reject", headers=security
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert orjson.dumps(rejected.json())  # a plain JSON body
    assert (await api.http.get("/api/policies/99", headers=security)).status_code == 404
    bad = await api.http.post("/api/policies", json={"rules": [{"detector": "x"}]}, headers=admin)
    assert bad.status_code == 400


async def test_a_rollback_through_the_api_is_a_proposal_that_needs_approval(api: Api) -> None:
    admin = api.token("adm@example.com", {None: "admin"})
    security = api.token("sec@example.com", {None: "security"})
    other = api.token("sec2@example.com", {None: "security"})
    viewer = api.token("v@example.com", {None: "viewer"})
    key = api.app.services.keyring.create(name="app", environment="dev")[1]  # type: ignore[union-attr]
    proposed = await api.http.post("/api/policies", json={"rules": codename_rules()}, headers=admin)
    version = proposed.json()["version"]
    await api.http.post(f"/api/policies/{version}/approve", headers=security)
    assert (await api.chat(key, f"about {CODENAME}")).status_code == 400

    assert (
        await api.http.post("/api/policies/1/rollback", json={}, headers=viewer)
    ).status_code == 403
    rollback = await api.http.post(
        "/api/policies/1/rollback", json={"reason": "too strict"}, headers=other
    )
    assert rollback.status_code == 201, rollback.text
    body = rollback.json()
    assert (body["status"], body["rollback_of"], body["source"]) == ("proposed", 1, "rollback")
    assert body["base_version"] == version and body["reason"] == "too strict"
    assert body["proposed_by"] == "account:sec2@example.com"
    # Not in force until another account approves it; its proposer may not.
    assert (await api.chat(key, f"about {CODENAME}")).status_code == 400
    own = await api.http.post(f"/api/policies/{body['version']}/approve", headers=other)
    assert own.status_code == 403 and own.json()["error"]["code"] == "self_approval"
    assert (await api.chat(key, f"about {CODENAME}")).status_code == 400
    approved = await api.http.post(f"/api/policies/{body['version']}/approve", headers=security)
    assert approved.status_code == 200 and approved.json()["status"] == "active"
    assert (await api.chat(key, f"about {CODENAME}")).status_code == 200  # version 1's rules
    # Refusals: the rules in force already, a version that never was active, no such version.
    same = await api.http.post("/api/policies/1/rollback", headers=admin)
    assert same.status_code == 400 and "already the active policy" in same.text
    never = await api.http.post("/api/policies", json={"rules": codename_rules()}, headers=admin)
    await api.http.post(f"/api/policies/{never.json()['version']}/reject", headers=security)
    unused = await api.http.post(f"/api/policies/{never.json()['version']}/rollback", headers=admin)
    assert unused.status_code == 400 and "never active" in unused.text
    assert (await api.http.post("/api/policies/99/rollback", headers=admin)).status_code == 404
    trail = [r["details"] for r in api.trail("policy_proposed") if r["details"].get("rollback_of")]
    assert [(d["version"], d["rollback_of"]) for d in trail] == [(body["version"], 1)]
