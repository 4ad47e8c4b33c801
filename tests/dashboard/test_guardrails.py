"""Guardrail policy changes in the browser under the two-person rule: an admin proposes, the
proposer cannot approve, a security account approves; and the playground judges a text."""

from __future__ import annotations

from typing import Any

import orjson
from playwright.sync_api import expect

from tests.dashboard.conftest import Site, sign_in


def test_admin_proposes_and_security_approves(browser: Any, page: Any, site: Site) -> None:
    sign_in(page, site, "admin")
    page.get_by_role("link", name="Guardrails").click()
    page.get_by_role("link", name="Propose a change").click()
    rules = orjson.loads(page.get_by_label("Rules (JSON)").input_value())
    rules.append(
        {
            "name": "no-codewords",
            "detector": "custom",
            "action": "block",
            "options": {"keywords": ["bluebird"]},
        }
    )
    page.get_by_label("Rules (JSON)").fill(orjson.dumps(rules).decode())
    page.get_by_label("Reason").fill("block the codeword")
    page.get_by_role("button", name="Propose").click()
    heading = page.get_by_role("heading", level=1).inner_text()
    version = heading.split()[2]
    assert "proposed" in heading
    assert page.get_by_text(
        "You proposed this version, so another account must approve it."
    ).is_visible()
    assert page.get_by_role("button", name=f"Approve version {version}").count() == 0

    reviewer = browser.new_context().new_page()
    try:
        sign_in(reviewer, site, "security")
        reviewer.goto(f"{site.base}/guardrails/{version}")
        expect(reviewer.get_by_text("no-codewords: added")).to_be_visible()
        reviewer.get_by_role("button", name=f"Approve version {version}").click()
        expect(reviewer.get_by_text("Approved: the gateway applies it")).to_be_visible()
    finally:
        reviewer.context.close()
    page.reload()
    assert "active" in page.get_by_role("heading", level=1).inner_text()


def test_playground_shows_what_would_be_redacted(page: Any, site: Site) -> None:
    before = site.services().store.count_records()
    sign_in(page, site, "viewer")
    page.goto(site.base + "/guardrails/playground")
    page.get_by_label("Text to check").fill("Write to jane.doe@example.com soon")
    page.get_by_role("button", name="Check").click()
    result = page.get_by_role("region", name="Result")
    expect(result.get_by_text("would be redacted")).to_be_visible()
    expect(result.get_by_text("Write to [EMAIL_1] soon")).to_be_visible()
    site.services().store.flush()
    after = site.services().store.count_records()
    assert after == before + 1  # the viewer's sign-in; the check itself stored nothing
