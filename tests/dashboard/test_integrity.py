"""Integrity in the browser: an auditor runs a verification, follows its progress to the
outcome, and finds it recorded as the last verification."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.dashboard.conftest import Site, sign_in


def test_auditor_runs_a_verification_and_sees_it_recorded(page: Any, site: Site) -> None:
    site.services().sealer.seal()  # a checkpoint to show and to verify against
    sign_in(page, site, "auditor")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Integrity").click()
    expect(page.get_by_role("region", name="Checkpoints")).to_be_visible()
    page.get_by_role("button", name="Run a verification").click()
    expect(page.get_by_text("The trail is intact")).to_be_visible(timeout=30_000)
    page.get_by_role("link", name="← Integrity").click()
    expect(page.get_by_text("by account:auditor@example.com")).to_be_visible()
