"""The admin API on the real account store, as `serve` wires it: an owner logs in (session
cookie + CSRF), takes a personal token, creates a gateway key through the API, and that key
works on /v1; a disabled account is refused at once."""

from __future__ import annotations

import httpx
import pytest

from signalvault.accounts.service import AccountService
from signalvault.app import GatewayApp

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
