"""Exports in the browser: an auditor starts one, downloads it, and sees it verified against its
signed manifest; the manifest page shows the signature check."""

from __future__ import annotations

from typing import Any

import orjson
from playwright.sync_api import expect

from tests.dashboard.conftest import Site, sign_in


def test_auditor_starts_downloads_and_verifies_an_export(
    page: Any, site: Site, tmp_path: Any
) -> None:
    sign_in(page, site, "auditor")
    page.get_by_role("link", name="Exports").click()
    page.get_by_label("Format").select_option("jsonl")
    with page.expect_download() as started:
        page.get_by_role("button", name="Start export").click()
    download = started.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    lines = saved.read_bytes().splitlines()
    assert lines and all("prompt" not in orjson.loads(line) for line in lines)
    status = page.get_by_role("status").filter(has_text="Verified")
    status.wait_for()
    assert "SHA-256 matches the signed manifest" in status.inner_text()
    page.get_by_role("link", name="See the manifest and its signature").click()
    expect(page.get_by_text("valid Ed25519 signature")).to_be_visible()
    page.get_by_label("Check a downloaded file against this manifest").set_input_files(saved)
    expect(page.get_by_text("The file matches the signed manifest")).to_be_visible()
