"""The admin API on the real account store, as `serve` wires it: an owner logs in (session
cookie + CSRF), takes a personal token, creates a gateway key through the API, and that key
works on /v1; a disabled account is refused at once."""

from __future__ import annotations

import httpx
import pytest

from signalvault.app import GatewayApp
from signalvault.control.accounts.service import AccountService

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple 9"


async def test_login_token_and_key_through_the_admin_api(gateway: GatewayApp, mock):
    assert gateway.services is not None
    accounts = gateway.accounts(gateway.services)
    assert isinstance(accounts, AccountService)
    accounts.create_account("owner@example.com", {None: "owner"}, "test", PASSWORD)
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="https://gateway") as api:
        assert (await api.get("/api/logs")).status_code == 401
        wrong = await api.post(
            "/api/auth/login", json={"email": "owner@example.com", "password": "nope" * 4}
        )
        assert wrong.status_code == 401
        login = await api.post(
            "/api/auth/login", json={"email": "owner@example.com", "password": PASSWORD}
        )
        assert login.status_code == 200
        csrf = login.json()["csrf_token"]
        # A state change with the cookie but without the CSRF token is refused.
        refused = await api.post("/api/tokens", json={"name": "ci"})
        assert refused.status_code == 403
        made = await api.post("/api/tokens", json={"name": "ci"}, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201
        token = made.json()["token"]
        assert token.startswith("svadm-")

    bearer = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url="https://gateway") as script:
        created = await script.post(
            "/api/keys", json={"name": "from-api", "environment": "dev"}, headers=bearer
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        chat = await script.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert chat.status_code == 200
        logs = await script.get("/api/logs", headers=bearer)
        assert logs.status_code == 200 and logs.json()["data"]

        other, _ = accounts.create_account("aud@example.com", {None: "auditor"}, "test", PASSWORD)
        aud_token = accounts.create_token(other.id, "t", None, "test")[1]
        aud = {"Authorization": f"Bearer {aud_token}"}
        assert (await script.get("/api/logs", headers=aud)).status_code == 200
        # An auditor changes nothing.
        denied = await script.post(
            "/api/keys", json={"name": "x", "environment": "dev"}, headers=aud
        )
        assert denied.status_code == 403
        accounts.disable_account(other.id, "test")
        assert (await script.get("/api/logs", headers=aud)).status_code == 401


def _trail(gateway: GatewayApp, kind: str) -> list[dict]:
    import orjson

    from signalvault.store import RecordFilter

    assert gateway.services is not None
    gateway.services.store.flush()
    rows = gateway.services.store.list_records(RecordFilter(), limit=10_000)
    return [  # by creation time: ids made in the same millisecond may sort either way
        {"actor": r["actor"], "details": orjson.loads(r["details"])}
        for r in sorted(rows, key=lambda r: r["created_at"])
        if r["kind"] == kind
    ]


async def test_a_one_time_password_must_be_changed_before_reading_logs(gateway: GatewayApp, mock):
    assert gateway.services is not None
    accounts = gateway.accounts(gateway.services)
    owner, _ = accounts.create_account("owner@example.com", {None: "owner"}, "test", PASSWORD)
    owner_token = accounts.create_token(owner.id, "t", None, "test")[1]
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="https://gateway") as admin:
        made = await admin.post(
            "/api/accounts",
            json={"email": "ana@example.com", "roles": {"*": "auditor"}},
            headers={"Authorization": f"Bearer {owner_token}"},
        )
        otp = made.json()["one_time_password"]
    async with (
        httpx.AsyncClient(transport=transport, base_url="https://gateway") as ana,
        httpx.AsyncClient(transport=transport, base_url="https://gateway") as elsewhere,
    ):
        login = await ana.post(
            "/api/auth/login", json={"email": "ana@example.com", "password": otp}
        )
        assert login.status_code == 200 and login.json()["must_change_password"] is True
        csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
        other = await elsewhere.post(
            "/api/auth/login", json={"email": "ana@example.com", "password": otp}
        )
        assert other.status_code == 200
        # Nothing but the password change (and logout) until it is changed.
        for response in (
            await ana.get("/api/logs"),
            await ana.post("/api/tokens", json={"name": "ci"}, headers=csrf),
            await ana.post("/api/audit/verify", headers=csrf),
        ):
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "password_change_required"
        change = {"current_password": otp, "new_password": "anas-own-password-1"}
        no_csrf = await ana.post("/api/auth/password", json=change)
        assert no_csrf.status_code == 403 and no_csrf.json()["error"]["code"] == "csrf_failed"
        wrong = await ana.post(
            "/api/auth/password", json={**change, "current_password": "guess" * 4}, headers=csrf
        )
        assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "wrong_password"
        short = await ana.post(
            "/api/auth/password", json={**change, "new_password": "short"}, headers=csrf
        )
        assert short.status_code == 400 and "at least 12" in short.json()["error"]["message"]
        done = await ana.post("/api/auth/password", json=change, headers=csrf)
        assert done.status_code == 200 and done.json() == {"status": "ok", "sessions_ended": 1}
        assert otp not in done.text
        # This session stays and may now read; the other one ended with the old password.
        assert (await ana.get("/api/logs")).status_code == 200
        assert (await elsewhere.get("/api/logs")).status_code == 401
        token = await ana.post("/api/tokens", json={"name": "ci"}, headers=csrf)
        assert token.status_code == 201
        old = await elsewhere.post(
            "/api/auth/login", json={"email": "ana@example.com", "password": otp}
        )
        assert old.status_code == 401
        new = await elsewhere.post(
            "/api/auth/login",
            json={"email": "ana@example.com", "password": "anas-own-password-1"},
        )
        assert new.json()["must_change_password"] is False

        # An owner's reset ends the sessions and closes everything but the change again,
        # for tokens issued before the reset too.
        fresh = accounts.reset_password(made.json()["id"], "account:owner@example.com")
        assert (await ana.get("/api/logs")).status_code == 401
        bearer = {"Authorization": f"Bearer {token.json()['token']}"}
        refused = await ana.get("/api/logs", headers=bearer)
        assert refused.json()["error"]["code"] == "password_change_required"
        changed = await ana.post(
            "/api/auth/password",
            json={"current_password": fresh, "new_password": "anas-second-password"},
            headers=bearer,
        )
        assert changed.status_code == 200
        assert (await ana.get("/api/logs", headers=bearer)).status_code == 200
    events = _trail(gateway, "password_changed")
    assert [e["actor"] for e in events] == ["account:ana@example.com"] * 2
    assert events[0]["details"]["session_kept"] is True
    assert events[1]["details"]["session_kept"] is False  # changed with a token
    failed = _trail(gateway, "password_change_failed")
    assert len(failed) == 1 and "guess" not in str(failed)


async def test_personal_tokens_are_listed_and_revoked_through_the_api(gateway: GatewayApp, mock):
    assert gateway.services is not None
    accounts = gateway.accounts(gateway.services)
    owner, _ = accounts.create_account("owner@example.com", {None: "owner"}, "test", PASSWORD)
    dev, _ = accounts.create_account("dev@example.com", {"alpha": "developer"}, "test", PASSWORD)
    owner_bearer = {"Authorization": f"Bearer {accounts.create_token(owner.id, 'o', None, 't')[1]}"}
    secrets_of = [accounts.create_token(dev.id, name, None, "t") for name in ("a", "b", "c")]
    (first, first_secret), (second, second_secret), (third, third_secret) = secrets_of
    dev_bearer = {"Authorization": f"Bearer {first_secret}"}
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="https://gateway") as api:
        mine = await api.get("/api/tokens", headers=dev_bearer)
        assert mine.status_code == 200
        rows = mine.json()["data"]
        assert [(t["id"], t["name"], t["status"]) for t in rows] == [
            (first.id, "a", "active"),
            (second.id, "b", "active"),
            (third.id, "c", "active"),
        ]
        assert mine.json()["next_cursor"] is None
        for secret in (first_secret, second_secret, third_secret):
            assert secret not in mine.text
        assert rows[0]["prefix"] == first_secret[:12]
        # Someone else's list: owners only.
        peek = await api.get(f"/api/tokens?account_id={owner.id}", headers=dev_bearer)
        assert peek.status_code == 403
        theirs = await api.get(f"/api/tokens?account_id={dev.id}", headers=owner_bearer)
        assert [t["id"] for t in theirs.json()["data"]] == [first.id, second.id, third.id]
        nobody = await api.get("/api/tokens?account_id=acc_nope", headers=owner_bearer)
        assert nobody.status_code == 404
        # A developer cannot even see the owner's token; revoking its own works at once.
        owner_token = accounts.list_tokens(owner.id)[0]
        hidden = await api.delete(f"/api/tokens/{owner_token.id}", headers=dev_bearer)
        assert hidden.status_code == 404
        assert (await api.get("/api/tokens", headers=owner_bearer)).status_code == 200
        gone = await api.delete(f"/api/tokens/{second.id}", headers=dev_bearer)
        assert gone.status_code == 200 and gone.json()["status"] == "revoked"
        second_bearer = {"Authorization": f"Bearer {second_secret}"}
        refused = await api.get("/api/keys", headers=second_bearer)
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
        again = await api.delete(f"/api/tokens/{second.id}", headers=dev_bearer)
        assert again.status_code == 409
        # An owner revokes anyone's.
        by_owner = await api.delete(f"/api/tokens/{third.id}", headers=owner_bearer)
        assert by_owner.status_code == 200
        third_bearer = {"Authorization": f"Bearer {third_secret}"}
        assert (await api.get("/api/keys", headers=third_bearer)).status_code == 401
        assert (await api.get("/api/keys", headers=dev_bearer)).status_code == 200
        missing = await api.delete("/api/tokens/tok_nope", headers=owner_bearer)
        assert missing.status_code == 404
    revoked = _trail(gateway, "token_revoked")
    assert [(e["actor"], e["details"]["token"]) for e in revoked] == [
        ("account:dev@example.com", second.id),
        ("account:owner@example.com", third.id),
    ]
