"""Incidents in the browser: the list with times to respond, an incident's linked records,
acknowledging and resolving with notes (as security), notes and scopes carrying attack payloads
shown as text, and the roles the API refuses refused here too, deep links included."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import PAYLOADS, XSS_PROJECT, Site, sign_in

NOTE = "on it " + PAYLOADS["script"] + PAYLOADS["img"]


def _incident(site: Site, record: str, project: str = "checkout") -> tuple[str, str]:
    """A fresh incident (its own kind, so tests do not share one); returns (id, kind)."""
    book = site.services().incidents
    kind = f"test_{uuid.uuid4().hex[:8]}"
    found, _ = book.note({"kind": kind, "project": project, "request_id": record})
    return found.id, kind


def test_security_acknowledges_and_resolves_an_incident(page: Any, site: Site) -> None:
    incident_id, kind = _incident(site, site.records["canary"])
    sign_in(page, site, "security")
    page.get_by_role("link", name="Incidents").click()
    page.get_by_label("Status").select_option("open")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("link", name=f"Incident {kind} {incident_id}").click()
    expect(page.get_by_role("heading", name=f"Incident: {kind}")).to_be_visible()
    expect(page.get_by_role("link", name=site.records["canary"])).to_be_visible()

    page.get_by_label("Acknowledgement note (optional)").fill(NOTE)
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_text("Incident acknowledged.")).to_be_visible()
    expect(page.get_by_text(NOTE, exact=True)).to_be_visible()  # the payload is text
    assert page.get_by_role("button", name="Acknowledge").count() == 0
    # Resolving needs a note: the browser asks for one, and the server refuses an empty one.
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "sv_csrf")
    empty = page.request.post(
        f"{site.base}/incidents/{incident_id}/resolve", form={"csrf_token": csrf, "note": " "}
    )
    assert empty.status == 400
    page.get_by_label("Resolution note (required)").fill("key rotated " + PAYLOADS["svg"])
    page.get_by_role("button", name="Resolve").click()
    expect(page.get_by_text("Incident resolved.")).to_be_visible()
    page.mouse.move(5, 5)
    page.mouse.move(600, 400)
    assert page.evaluate("() => window.__xss") is None
    stored = site.services().incidents.get(incident_id)
    assert stored.status == "resolved" and stored.ack_note == NOTE
    assert stored.resolved_by == "account:security@example.com"
    # The list shows it resolved, with the times it took.
    page.goto(f"{site.base}/incidents?kind={kind}")
    row = page.get_by_role("region", name="Incidents").get_by_role("row").nth(1)
    expect(row.get_by_text("resolved", exact=True)).to_be_visible()
    assert row.get_by_role("cell").nth(8).inner_text() != "\u2013"  # time to resolve


def test_a_scope_naming_an_attacker_project_is_text(page: Any, site: Site) -> None:
    incident_id, _ = _incident(site, site.records["xss"], project=XSS_PROJECT)
    sign_in(page, site, "auditor")
    for path in ("/incidents", f"/incidents/{incident_id}"):
        page.goto(site.base + path)
        expect(page.get_by_text(f"project:{XSS_PROJECT}", exact=True).first).to_be_visible()
        page.mouse.move(600, 400)
        assert page.evaluate("() => window.__xss") is None
    # The auditor reads incidents but may not respond to them.
    assert page.get_by_role("button", name="Acknowledge").count() == 0


@pytest.mark.parametrize("role", ["viewer", "auditor"])
def test_readers_cannot_acknowledge_even_by_posting(page: Any, site: Site, role: str) -> None:
    incident_id, _ = _incident(site, site.records["canary"])
    sign_in(page, site, role)
    page.goto(f"{site.base}/incidents/{incident_id}")
    expect(page.get_by_text("Your role may read incidents")).to_be_visible()
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "sv_csrf")
    answer = page.request.post(
        f"{site.base}/incidents/{incident_id}/ack", form={"csrf_token": csrf, "note": "x"}
    )
    assert answer.status == 403
    assert site.services().incidents.get(incident_id).status == "open"


def test_a_developer_has_no_incidents_page_even_by_url(page: Any, site: Site) -> None:
    incident_id, kind = _incident(site, site.records["developer"])
    sign_in(page, site, "developer")
    assert page.get_by_role("link", name="Incidents").count() == 0
    for path in ("/incidents", f"/incidents/{incident_id}"):
        answer = page.goto(site.base + path)
        assert answer.status == 403, path
        assert kind not in page.content() and site.records["developer"] not in page.content()
