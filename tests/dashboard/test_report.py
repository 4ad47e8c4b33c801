"""The SOC 2 evidence report in the browser: an auditor generates it over a chosen period, reads
its summary, provider register and data classes, and downloads the signed JSON (its signature
verifies) and the HTML page of that same report; roles the API refuses are refused here too."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.sync_api import expect

from signalvault.trail.export import manifest as manifests
from tests.dashboard.conftest import Site, sign_in

SHOTS = os.environ.get("SIGNALVAULT_SCREENSHOTS")


def test_auditor_generates_and_downloads_the_report(page: Any, site: Site) -> None:
    sign_in(page, site, "auditor")
    page.get_by_role("link", name="Evidence report").click()
    page.get_by_label("Period start (age or UTC date)").fill("7d")
    page.get_by_role("button", name="Generate report").click()
    json_link = page.get_by_role("link", name="Download signed JSON")
    expect(json_link).to_be_visible(timeout=30_000)
    expect(page.get_by_role("region", name="Criteria and gaps")).to_be_visible()
    expect(page.get_by_role("heading", name="Provider register")).to_be_visible()
    classes = page.get_by_role("table").filter(has_text="Records")
    expect(classes.get_by_role("cell", name="internal").first).to_be_visible()
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / "report.png"), full_page=False)

    with page.expect_download() as got:
        json_link.click()
    report = orjson.loads(Path(got.value.path()).read_bytes())
    assert report["type"] == "signalvault.report.soc2"
    assert manifests.check_signature(report).is_ok
    assert got.value.suggested_filename.endswith(".json")
    # The page shows the very report downloaded: the record of its generation is linked.
    expect(page.get_by_role("link", name=report["audit_record_id"])).to_be_visible()
    with page.expect_download() as got:
        page.get_by_role("link", name="Download HTML report").click()
    html = Path(got.value.path()).read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and report["audit_record_id"] in html
    generated = site.services().store.get_record(report["audit_record_id"])
    assert generated is not None and generated["actor"] == "account:auditor@example.com"


def test_a_period_the_report_cannot_read_is_refused_before_anything_runs(
    page: Any, site: Site
) -> None:
    sign_in(page, site, "security")
    page.goto(f"{site.base}/report")
    page.get_by_label("Period start (age or UTC date)").fill("last tuesday")
    page.get_by_role("button", name="Generate report").click()
    expect(page.get_by_role("heading", name="Check the input")).to_be_visible()


@pytest.mark.parametrize("role", ["viewer", "developer"])
def test_roles_without_reports_are_refused_even_by_url(page: Any, site: Site, role: str) -> None:
    sign_in(page, site, role)
    assert page.get_by_role("link", name="Evidence report").count() == 0
    assert page.goto(f"{site.base}/report").status == 403
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "sv_csrf")
    answer = page.request.post(f"{site.base}/report", form={"csrf_token": csrf, "since": "7d"})
    assert answer.status == 403 and "Download" not in answer.text()


def test_another_accounts_report_is_not_found(page: Any, site: Site) -> None:
    sign_in(page, site, "owner")
    page.goto(f"{site.base}/report")
    page.get_by_role("button", name="Generate report").click()
    expect(page.get_by_role("link", name="Download signed JSON")).to_be_visible(timeout=30_000)
    report_url = page.url
    page.context.clear_cookies()
    sign_in(page, site, "admin")
    assert page.goto(report_url).status == 404
    assert page.goto(report_url + "/report.json").status == 404
