"""Erasing a data subject in the browser: refused without the typed confirmation, done with it,
with the receipt shown."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.dashboard.conftest import Site, sign_in


def test_owner_erases_a_subject_after_typing_the_id_again(page: Any, site: Site) -> None:
    sign_in(page, site, "owner")
    page.get_by_role("link", name="Data subjects").click()
    page.get_by_label("End user id", exact=True).last.fill("erasable-user")
    page.get_by_label("Type the end user id again to confirm").fill("erasable-usr")
    page.get_by_role("button", name="Erase end user").click()
    assert page.get_by_role("alert").inner_text().startswith("Type the end user id exactly")
    assert site.services().store.get_record(site.records["pii"])["tombstoned_at"] is None

    page.get_by_label("End user id", exact=True).last.fill("erasable-user")
    page.get_by_label("Type the end user id again to confirm").fill("erasable-user")
    page.get_by_role("button", name="Erase end user").click()
    receipt = page.get_by_role("status", name="Erasure receipt")
    expect(receipt.get_by_role("heading", name="Erased")).to_be_visible()
    assert site.services().store.get_record(site.records["pii"])["tombstoned_at"] is not None
