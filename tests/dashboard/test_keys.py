"""Keys in the browser: a developer creates a key (its secret shown once, with a copy button),
rotates it with a grace period and revokes it, and sees only their own keys."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.dashboard.conftest import Site, sign_in


def test_developer_creates_rotates_and_revokes_a_key(page: Any, site: Site, watch: Any) -> None:
    sign_in(page, site, "developer")
    page.get_by_role("link", name="Keys").click()
    assert page.get_by_role("cell").filter(has_text="checkout-prod").count() == 0  # owner's
    page.get_by_label("Name").fill("my-notebook")
    page.get_by_label("Environment").fill("dev")
    page.get_by_label("Requests per minute").fill("30")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("Secret of key my-notebook").input_value()
    assert secret.startswith("sv-dev-")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("status").filter(has_text="Copied")).to_be_visible()
    page.get_by_role("link", name="Back to the keys").click()
    assert secret not in page.content()  # shown once

    page.get_by_label("Grace period for my-notebook").select_option("3600")
    page.get_by_role("button", name="Rotate key my-notebook").click()
    rotated = page.get_by_label("Secret of key my-notebook").input_value()
    expect(rotated != secret and page.get_by_text("works until")).to_be_visible()
    page.get_by_role("link", name="Back to the keys").click()

    watch.confirm = True
    page.get_by_role("button", name="Revoke key my-notebook").click()
    expect(page.get_by_text("The key is revoked")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="my-notebook")
    expect(row.get_by_text("revoked")).to_be_visible()
