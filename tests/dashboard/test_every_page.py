"""Every page, as the role that sees the most of it and as the roles that see least: no request
leaves the gateway's origin, no console error, no 5xx, no serious accessibility violation
(axe-core), nothing from the trail without a session, no content for viewers and developers;
and attacker-controlled text (prompts, end-user ids, key and project names) stays text."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.dashboard.agent_traffic import ARGUMENT_CANARY, RESULT_CANARY
from tests.dashboard.conftest import (
    CANARY,
    PAYLOADS,
    XSS_KEY_NAME,
    XSS_PROJECT,
    XSS_USER,
    Site,
    axe_violations,
    sign_in,
)

PAGES = (
    "/",
    "/logs",
    "/runs",
    "/incidents",
    "/report",
    "/guardrails",
    "/guardrails/new",
    "/guardrails/playground",
    "/keys",
    "/accounts",
    "/providers",
    "/retention",
    "/exports",
    "/subjects",
    "/integrity",
    "/alerts",
    "/settings",
    "/audit-log",
)
# Where the screenshots in docs/ come from: `SIGNALVAULT_SCREENSHOTS=docs/screenshots make test`.
SHOTS = os.environ.get("SIGNALVAULT_SCREENSHOTS")


def shot_names(site: Site) -> dict[str, str]:
    """Detail pages with a screenshot of their own, by the name of their file."""
    return {
        f"/logs/{site.records['canary']}": "record",
        f"/runs/{site.agents.runs['weather-agent']}": "run",
        f"/incidents/{_an_incident(site)}": "incident",
    }


def _pages(site: Site) -> list[str]:
    return [
        *PAGES,
        f"/logs/{site.records['canary']}",
        f"/logs/{site.records['xss']}",
        f"/logs/{site.records['agent']}",
        f"/runs/{site.agents.runs['weather-agent']}",
        f"/runs/{site.agents.runs['forged-agent']}",
        f"/incidents/{_an_incident(site)}",
        "/guardrails/1",
    ]


def _an_incident(site: Site) -> str:
    """An incident of the site (an alert about the attacker's record), opened once."""
    book = site.services().incidents
    alert = {
        "kind": "secrets_blocked",
        "project": "checkout",
        "request_id": site.records["canary"],
        "api": "chat",
        "outcome": "blocked",
        "rules": ["secrets"],
        "findings": {"AWS_ACCESS_KEY_ID": 1},
    }
    found, _ = book.note(alert)
    return found.id


def test_every_page_stays_on_origin_and_passes_axe(page: Any, site: Site, axe_source: str) -> None:
    sign_in(page, site, "owner")
    problems = {}
    for path in _pages(site):
        response = page.goto(site.base + path)
        assert response.status == 200, path
        found = axe_violations(page, axe_source)
        if found:
            problems[path] = found
        # The report's picture is taken with a report on it (test_report.py).
        if SHOTS and path != "/report" and (path in PAGES or path in shot_names(site)):
            name = path.strip("/").replace("/", "-") or "overview"
            name = shot_names(site).get(path, name)
            page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)
    assert problems == {}


def test_pages_work_at_phone_width(page: Any, site: Site, axe_source: str) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, site, "owner")
    run = f"/runs/{site.agents.runs['weather-agent']}"
    for path in ("/", "/logs", "/keys", "/runs", run, "/incidents", "/report"):
        page.goto(site.base + path)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"{path} scrolls sideways at phone width ({width}px)"
        assert axe_violations(page, axe_source) == []
    if SHOTS:
        page.goto(site.base + "/")
        page.screenshot(path=str(Path(SHOTS) / "overview-phone.png"))


def test_deep_links_without_a_session_show_no_data(page: Any, site: Site) -> None:
    for path in _pages(site):
        response = page.goto(site.base + path)
        assert response.status == 200 and page.url.startswith(site.base + "/login"), path
        html = page.content()
        assert CANARY not in html and "alice" not in html and "checkout" not in html, path
        assert "get_weather" not in html and "secrets_blocked" not in html, path


@pytest.mark.parametrize("role", ["viewer", "developer"])
def test_viewers_and_developers_never_see_content(page: Any, site: Site, role: str) -> None:
    sign_in(page, site, role)
    for path in _pages(site):
        page.goto(site.base + path)
        html = page.content()
        assert CANARY not in html and ARGUMENT_CANARY not in html, path
        assert RESULT_CANARY not in html, path
        assert page.get_by_role("button", name="Reveal content").count() == 0, path
        assert page.get_by_role("button", name="Reveal tool arguments and results").count() == 0
    # Posting the reveal form anyway (the CSRF token is the session's own) is refused.
    token = page.context.cookies()
    csrf = next(c["value"] for c in token if c["name"] == "sv_csrf")
    for record in (site.records["canary"], site.records["developer"]):
        answer = page.request.post(
            f"{site.base}/logs/{record}/content", form={"csrf_token": csrf, "reason": "x"}
        )
        assert answer.status in (403, 404) and CANARY not in answer.text()


def test_developer_sees_only_their_own_keys_traffic(page: Any, site: Site) -> None:
    sign_in(page, site, "developer")
    page.goto(site.base + "/logs")
    links = page.get_by_role("region", name="Records").get_by_role("link")
    shown = {links.nth(i).get_attribute("href") for i in range(links.count())}
    store = site.services().store
    mine = {f"/logs/{r['id']}" for r in store.list_records(_of_key(site.keys["developer"]), 50)}
    assert shown == mine and f"/logs/{site.records['developer']}" in shown
    assert page.goto(f"{site.base}/logs/{site.records['canary']}").status == 404


def _of_key(key_id: str) -> Any:
    from signalvault.store import RecordFilter

    return RecordFilter(key_id=key_id)


def test_attack_payloads_render_as_text_everywhere(page: Any, site: Site) -> None:
    """The payloads reach the logs, a record (metadata and content), keys, the overview's
    charts, the alerts page and the audit log; none runs, each reads as the text it is."""
    sign_in(page, site, "owner")
    record = site.records["xss"]
    run = site.agents.runs["weather-agent"]
    pages = ("/", "/logs", f"/logs/{record}", "/keys", "/alerts", "/audit-log", "/runs")
    for path in (*pages, f"/runs/{run}", f"/logs/{site.records['agent']}"):
        page.goto(site.base + path)
        page.mouse.move(5, 5)
        page.mouse.move(600, 400)  # hover over whatever an onmouseover break-out would set up
        assert page.evaluate("() => window.__xss") is None, path
    page.goto(f"{site.base}/logs/{record}")
    expect(page.get_by_text(XSS_USER, exact=True).first).to_be_visible()
    page.get_by_role("button", name="Reveal content").click()
    assert PAYLOADS["script"] in page.locator("pre.content").first.inner_text()
    page.goto(site.base + "/keys")
    expect(page.get_by_role("cell").filter(has_text=XSS_KEY_NAME).first).to_be_visible()
    expect(page.get_by_role("cell").filter(has_text=XSS_PROJECT).first).to_be_visible()
    page.goto(site.base + "/")
    assert page.locator("svg text").filter(has_text="p<svg").count() >= 1
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("a[href^='javascript:']").count() == 0
