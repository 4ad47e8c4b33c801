"""The HTML report as a person sees it: a seeded two-week trail, the report rendered, and a
full-page screenshot taken in headless Chromium. `make docs-images` writes the one in docs/;
tests/evidence/test_report_page.py runs the same code and checks the page."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from signalvault.config import (
    AlertSettings,
    AuditSettings,
    PrivacySettings,
    RetentionSettings,
    Secret,
    Settings,
)
from signalvault.mock_provider import MockProvider
from signalvault.server import BackgroundServer
from tests.conftest import make_settings, running_gateway
from tests.evidence.helpers import AWS_KEY, EMAIL, PATHS, auth, body, provider, with_register

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DAY = 86_400.0


def demo_settings(data: Path, base_url: str) -> Settings:
    settings = with_register(
        make_settings(data, base_url),
        provider(
            "azure-eu",
            base_url,
            dpa=True,
            dpa_reference="MS-DPA-2026-04",
            dpa_signed="2026-02-01",
            dpa_review="2027-02-01",
            region="westeurope",
            processor="Microsoft Azure",
            sub_processors=("Microsoft Ireland Operations",),
            retention_terms="abuse monitoring off (approved exemption)",
            zero_data_retention={
                "scope": "organisation",
                "granted_to": "org-4711",
                "evidence": "Azure ticket 2602-118",
                "excluded_endpoints": "/v1/files, /v1/batches",
            },
        ),
        provider("openai-us", base_url, region="US", allowed_classes=("public", "internal")),
        routes=[("gpt-4o-mini", ["openai-us", "azure-eu"])],
    )
    return replace(
        settings,
        alerts=AlertSettings(webhook_url=Secret("http://127.0.0.1:9/hook")),
        # No periodic seal while the traffic is spread over two weeks (the final one seals it).
        audit=AuditSettings(seal_interval_seconds=3600),
        retention=RetentionSettings(days=365, classes={"restricted": 30, "confidential": 90}),
        privacy=PrivacySettings(
            lawful_basis={"support": "contract"}, purposes={"support": "replies"}
        ),
    )


async def _traffic(settings: Settings) -> None:
    rng = random.Random(14)
    async with running_gateway(settings) as (app, client, _):
        assert app.services is not None
        _, key = app.services.keyring.create(
            name="support-bot", environment="prod", project="support"
        )
        app.services.keyring.create(name="search", environment="prod", project="search")
        for _ in range(160):
            roll = rng.random()
            text = (
                f"use {AWS_KEY}" if roll < 0.04 else f"reply to {EMAIL}" if roll < 0.3 else "hello"
            )
            await client.post(PATHS["chat"], json=body("chat", text), headers=auth(key))
        assert app.evidence.desk is not None
        app.evidence.desk.drain()
        for incident in app.services.incidents.list()[:1]:
            app.services.incidents.acknowledge(incident.id, "account:sec@example.com", "on it")
        app.services.store.flush()
        _spread(settings.store.data_dir)


def _spread(data: Path, days: int = 14) -> None:
    """Move the interactions over the last `days` days, so the charts have a shape."""
    db = sqlite3.connect(data / "signalvault.db")
    ids = [row[0] for row in db.execute("SELECT id FROM audit_records WHERE kind = 'interaction'")]
    rng = random.Random(3)
    now = time.time()
    for record_id in ids:
        db.execute(
            "UPDATE audit_records SET created_at = ? WHERE id = ?",
            (now - rng.random() ** 1.5 * days * DAY, record_id),
        )
    db.commit()
    db.close()


def build_demo_report(workdir: Path, base_url: str) -> str:
    """A seeded trail's report as HTML."""
    from signalvault.control.services import open_services
    from signalvault.evidence.report.build import build_report, default_period
    from signalvault.evidence.report.html import render_html
    from signalvault.trail.integrity.sealer import seal_now
    from signalvault.trail.signing import load_signer

    settings = demo_settings(workdir, base_url)
    asyncio.run(_traffic(settings))
    services = open_services(settings)
    try:
        seal_now(services)
        report = build_report(
            services.store,
            services.trail,
            settings,
            services.incidents,
            load_signer(services.store, services.trail.master_keys),
            default_period(),
            "docs",
        )
    finally:
        services.sealer.close()
        services.store.close()
    return render_html(report)


def screenshot(
    html: Path, png: Path, width: int = 1100, max_height: int | None = None
) -> dict[str, float]:
    """Full-page PNG of the report (its top `max_height` pixels when given); returns
    measurements of the page for checks."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(html.as_uri())
            measures = page.evaluate(
                """() => ({
                    overflow: document.documentElement.scrollWidth - window.innerWidth,
                    svgs: [...document.querySelectorAll('svg')]
                        .filter(s => s.getBoundingClientRect().width > 300).length,
                    criteria: document.querySelectorAll('article.criterion').length,
                    height: document.documentElement.scrollHeight,
                })"""
            )
            if max_height is None:
                page.screenshot(path=str(png), full_page=True)
            else:
                height = min(measures["height"], max_height)
                clip = {"x": 0, "y": 0, "width": width, "height": height}
                page.screenshot(path=str(png), full_page=True, clip=clip)
        finally:
            browser.close()
    return measures


def main(target: str) -> None:
    mock = MockProvider()
    server = BackgroundServer(mock).start()
    try:
        with tempfile.TemporaryDirectory() as workdir:
            html = Path(workdir) / "report.html"
            html.write_text(build_demo_report(Path(workdir), f"http://127.0.0.1:{server.port}/v1"))
            out = Path(target)
            out.parent.mkdir(parents=True, exist_ok=True)
            # The summary, charts, data flow, gaps and the first criteria: what a reader sees first.
            print(screenshot(html, out, max_height=3000))
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/img/report-soc2.png")
