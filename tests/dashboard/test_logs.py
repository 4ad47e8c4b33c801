"""Reading the logs in the browser: filters, a record's detail, and the content of a record
revealed by an auditor, with the read recorded in the trail before the content shows."""

from __future__ import annotations

from typing import Any

import orjson
from playwright.sync_api import expect

from tests.dashboard.conftest import CANARY, Site, sign_in


def test_security_filters_the_logs_and_opens_a_record(page: Any, site: Site) -> None:
    sign_in(page, site, "security")
    page.get_by_role("link", name="Logs").click()
    page.get_by_label("End user").fill("alice")
    page.get_by_role("button", name="Filter").click()
    rows = page.get_by_role("region", name="Records").get_by_role("row")
    assert rows.count() == 2  # the header and alice's one request
    page.get_by_role("link", name=f"Record {site.records['canary']}").click()
    expect(page.get_by_role("heading", name=f"Record {site.records['canary']}")).to_be_visible()
    expect(page.get_by_role("heading", name="Guardrail evaluations")).to_be_visible()
    assert (
        page.get_by_role("region", name="Provider attempts")
        .get_by_role("cell", name="openai")
        .is_visible()
    )
    # Security may not read content: no way to reveal it, and no content in the page.
    assert page.get_by_role("button", name="Reveal content").count() == 0
    assert CANARY not in page.content()


def test_auditor_reveals_content_and_the_read_is_recorded(page: Any, site: Site) -> None:
    record = site.records["canary"]
    sign_in(page, site, "auditor")
    page.goto(f"{site.base}/logs/{record}")
    assert CANARY not in page.content()  # metadata only until the auditor asks
    page.get_by_label("Reason (optional)").fill("ticket SEC-42")
    page.get_by_role("button", name="Reveal content").click()
    prompt = page.locator("pre.content").first
    expect(CANARY in prompt.inner_text() and prompt).to_be_visible()
    assert page.url == f"{site.base}/logs/{record}/content"  # content is never at a GET URL
    reads = [
        orjson.loads(r["details"])
        for r in site.services().store.list_records(_kinds("content_read"), limit=50)
        if r["actor"] == "account:auditor@example.com"
    ]
    assert {"record": record, "reason": "ticket SEC-42"} in reads
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("cell", name="account:auditor@example.com").first).to_be_visible()


def _kinds(*kinds: str) -> Any:
    from signalvault.store import RecordFilter

    return RecordFilter(kinds=kinds)
