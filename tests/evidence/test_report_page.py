"""The HTML report in a real browser (headless Chromium): it lays out without overflow, shows
every criterion, draws its three charts, and needs nothing from the network."""

from __future__ import annotations

import shutil

import pytest

from tests.evidence.report_page import CHROMIUM, build_demo_report, screenshot

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or shutil.which("chromium") is None,
    reason="headless Chromium is not installed (apt-get install chromium)",
)


def test_the_report_renders_whole_in_a_browser(tmp_path, mock_provider, mock):
    pytest.importorskip("playwright")
    html = tmp_path / "report.html"
    html.write_text(build_demo_report(tmp_path / "trail", mock_provider[1]))
    measures = screenshot(html, tmp_path / "report.png")
    assert measures["overflow"] <= 0  # nothing wider than the window
    assert measures["criteria"] == 24
    assert measures["svgs"] == 3  # traffic, findings, data flow, each drawn at full width
    assert (tmp_path / "report.png").stat().st_size > 50_000
