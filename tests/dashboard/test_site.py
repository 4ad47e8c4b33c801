"""The dashboard over HTTP in process: security headers on every answer, cookies, CSRF on every
change, login throttling, sessions shared with the API, and pages that answer what the API
answers the same account."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from signalvault.app import GatewayApp, create_app
from signalvault.config import AccountSettings, Settings
from signalvault.control.services import open_accounts

pytestmark = pytest.mark.anyio
PASSWORD = "dashboard test password 1"
PAGES = ("/", "/logs", "/guardrails", "/keys", "/accounts", "/providers", "/retention")
PAGES += ("/exports", "/subjects", "/integrity", "/alerts", "/settings", "/audit-log")


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[GatewayApp]:
    gateway = create_app(
        replace(settings, accounts=AccountSettings(password_time_cost=1, password_memory_kib=19456))
    )
    await gateway.startup()
    assert gateway.services is not None
    accounts = open_accounts(gateway.services, gateway.settings)
    for role in ("owner", "viewer", "developer"):
        accounts.create_account(f"{role}@example.com", {None: role}, "test", password=PASSWORD)
    yield gateway
    await gateway.shutdown()


def client(app: GatewayApp) -> httpx.AsyncClient:
    # https: the session cookies are Secure, so the client only sends them over https.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://gateway")


@contextlib.asynccontextmanager
async def signed_in(app: GatewayApp, role: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client(app) as browser:
        answer = await browser.post(
            "/login", data={"email": f"{role}@example.com", "password": PASSWORD, "next": "/"}
        )
        assert answer.status_code == 303, answer.text
        yield browser


def csrf(browser: httpx.AsyncClient) -> str:
    return str(browser.cookies["sv_csrf"])


async def test_every_page_sends_a_strict_policy_and_no_store(app: GatewayApp) -> None:
    async with signed_in(app, "owner") as browser:
        for path in (*PAGES, "/login", "/no-such-page"):
            answer = await browser.get(path)
            assert answer.status_code in (200, 404), path
            policy = answer.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "unsafe" not in policy
            assert "frame-ancestors 'none'" in policy
            assert answer.headers["referrer-policy"] == "no-referrer"
            assert answer.headers["cache-control"] == "no-store"
            assert answer.headers["x-content-type-options"] == "nosniff"
            # No inline script anywhere: every <script> names a file of the gateway.
            for tag in re.findall(r"<script[^>]*>", answer.text):
                assert 'src="/static/' in tag, (path, tag)
        static = await browser.get("/static/dashboard.js")
        assert static.status_code == 200 and "no-store" not in static.headers["cache-control"]


async def test_login_sets_session_cookies_for_the_whole_origin(app: GatewayApp) -> None:
    async with client(app) as browser:
        answer = await browser.post(
            "/login", data={"email": "viewer@example.com", "password": PASSWORD}
        )
        cookies = answer.headers.get_list("set-cookie")
        assert len(cookies) == 2
        for cookie in cookies:
            assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=strict" in cookie
            assert "Path=/;" in cookie or cookie.endswith("Path=/")
        # The same session serves the admin API: one source of sessions.
        assert (await browser.get("/api/logs")).status_code == 200


async def test_changes_without_the_csrf_token_are_refused(app: GatewayApp) -> None:
    async with signed_in(app, "owner") as browser:
        assert app.services is not None
        before = len(app.services.store.list_keys())
        for token in (None, "forged"):
            form = {"name": "k", "environment": "dev", "project": "default"}
            if token is not None:
                form["csrf_token"] = token
            answer = await browser.post("/keys", data=form)
            assert answer.status_code == 403
        assert len(app.services.store.list_keys()) == before
        made = await browser.post(
            "/keys",
            data={
                "name": "k",
                "environment": "dev",
                "project": "default",
                "csrf_token": csrf(browser),
            },
        )
        assert made.status_code == 200 and "sv-dev-" in made.text


async def test_failed_logins_are_throttled_as_in_the_api(app: GatewayApp) -> None:
    limit = app.settings.accounts.login_max_failures
    async with client(app) as browser:
        for _ in range(limit):
            failed = await browser.post(
                "/login", data={"email": "viewer@example.com", "password": "wrong"}
            )
            assert failed.status_code == 401
        locked = await browser.post(
            "/login", data={"email": "viewer@example.com", "password": PASSWORD}
        )
        assert locked.status_code == 429 and "retry-after" in locked.headers
        api = await browser.post(
            "/api/auth/login", json={"email": "viewer@example.com", "password": PASSWORD}
        )
        assert api.status_code == 429  # one throttle for both doors


async def test_a_page_lists_exactly_what_the_api_lists(app: GatewayApp, mock: Any) -> None:
    assert app.services is not None
    keyring = app.services.keyring
    _, own = keyring.create(
        name="mine", environment="dev", created_by="account:developer@example.com"
    )
    _, other = keyring.create(name="theirs", environment="dev", created_by="someone")
    async with client(app) as proxy:
        for secret in (own, other, own):
            await proxy.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {secret}"},
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            )
    app.services.store.flush()
    for role in ("developer", "viewer"):
        async with signed_in(app, role) as browser:
            listed = (await browser.get("/api/logs?kind=interaction")).json()["data"]
            page = (await browser.get("/logs?kind=interaction")).text
            shown = re.findall(r'href="/logs/([0-9a-f-]{36})"', page)
            assert shown == [r["id"] for r in listed], role
            assert len(shown) == (2 if role == "developer" else 3)


async def test_a_logged_out_session_opens_nothing(app: GatewayApp) -> None:
    async with signed_in(app, "owner") as browser:
        token = csrf(browser)
        cookie = browser.cookies["sv_session"]
        out = await browser.post("/logout", data={"csrf_token": token})
        assert out.status_code == 303
        browser.cookies.set("sv_session", cookie, domain="gateway")  # replaying the old cookie
        answer = await browser.get("/logs")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


async def test_sign_in_never_redirects_off_the_origin(app: GatewayApp) -> None:
    async with client(app) as browser:
        for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
            answer = await browser.post(
                "/login", data={"email": "viewer@example.com", "password": PASSWORD, "next": target}
            )
            assert answer.headers["location"] == "/"
