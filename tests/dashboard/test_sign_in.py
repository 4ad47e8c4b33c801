"""Signing in to the dashboard in a real browser: a password, then the overview; a one-time
password must be changed before anything else."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.dashboard.conftest import PASSWORD, Site, sign_in


def test_owner_signs_in_and_sees_the_overview(page: Any, site: Site) -> None:
    page.goto(site.base + "/")
    assert page.url.startswith(site.base + "/login")  # a deep link without a session
    sign_in(page, site, "owner")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Logs")
    ).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(site.base + "/login")
    page.goto(site.base + "/logs")
    assert page.url.startswith(site.base + "/login")


def test_wrong_password_is_refused_with_a_message(page: Any, site: Site) -> None:
    sign_in(page, site, "viewer", password="not the password at all")
    assert page.get_by_role("alert").inner_text() == "invalid email or password"
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_one_time_password_must_be_changed_first(page: Any, site: Site) -> None:
    accounts = site.app.accounts(site.services())  # type: ignore[misc]
    one_time = accounts.reset_password(accounts.get_account("newcomer@example.com").id, "test")
    sign_in(page, site, "newcomer@example.com", password=one_time)
    expect(page.get_by_role("heading", name="Choose a password")).to_be_visible()
    page.goto(site.base + "/logs")  # anything else leads back here
    expect(page.get_by_role("heading", name="Choose a password")).to_be_visible()
    assert page.get_by_role("navigation", name="Main").count() == 0
    page.get_by_label("Current password").fill(one_time)
    page.get_by_label("New password", exact=True).fill(PASSWORD + " chosen")
    page.get_by_label("New password again").fill(PASSWORD + " chosen")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status").filter(has_text="Your password is changed")).to_be_visible()
    page.get_by_role("link", name="Logs").click()
    expect(page.get_by_role("heading", name="Logs")).to_be_visible()
