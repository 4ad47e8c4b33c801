"""Agent runs in the browser: the list, a run's tree checked event by event against the traffic
the gateway recorded, unanswered calls and forged results flagged, tool arguments and results
revealed only to content readers (the read recorded with its reason), a record's page showing
its run's tool calls, and the refusals a deep link gets."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from playwright.sync_api import expect

from signalvault.agents.runs import run_detail, run_rows
from tests.dashboard.agent_traffic import ARGUMENT_CANARY, RESULT_CANARY
from tests.dashboard.conftest import PAYLOADS, XSS_TOOL, Site, sign_in

LABELS = {"model_call": "Model call", "tool_call": "Tool call", "tool_result": "Tool result"}


def _run(site: Site, name: str) -> dict[str, Any]:
    return run_detail(run_rows(site.services().store, site.agents.runs[name]))


def test_the_run_tree_shows_each_event_under_the_one_it_answers(page: Any, site: Site) -> None:
    run = _run(site, "weather-agent")
    sign_in(page, site, "security")
    page.get_by_role("link", name="Agent runs").click()
    runs = page.get_by_role("region", name="Runs")
    row = runs.get_by_role("row").filter(has=page.get_by_role("link", name=f"Run {run['id']}"))
    expect(row.get_by_role("cell", name="checkout", exact=True)).to_be_visible()
    assert row.get_by_role("cell").nth(5).inner_text() == "2 / 1"  # model calls / tool calls
    assert row.get_by_role("cell").nth(6).inner_text() == "0 / 0"  # blocked / flagged
    row.get_by_role("link", name=f"Run {run['id']}").click()
    expect(page.get_by_role("heading", name=f"Run {run['id']}")).to_be_visible()

    items = page.get_by_role("list", name="Run events").get_by_role("listitem")
    assert items.count() == len(run["events"])
    expected_types = ["model_call", "tool_call", "tool_result", "model_call", "span"]
    assert [e["type"] for e in run["events"]] == expected_types
    for n, event in enumerate(run["events"]):
        item = items.nth(n)
        assert item.locator(".kind").inner_text() == LABELS.get(event["type"], "Span")
        assert f"d{min(event['depth'], 8)}" in (item.get_attribute("class") or "")
        link = item.get_by_role("link", name=f"{event['record_id']}")
        assert link.get_attribute("href") == f"/logs/{event['record_id']}"
    call, result = items.nth(1), items.nth(2)
    for item in (call, result):
        expect(item.get_by_text("get_weather", exact=True)).to_be_visible()
        expect(item.get_by_text(site.agents.call_id, exact=True)).to_be_visible()
    expect(result.get_by_text("answered after")).to_be_visible()
    # The result's e-mail-free text passes; the model calls were screened by the default rules.
    expect(items.nth(0).get_by_text("guardrail evaluation")).to_be_visible()
    html = page.content()
    assert ARGUMENT_CANARY not in html and RESULT_CANARY not in html  # metadata only


def test_unanswered_calls_and_forged_results_are_flagged(page: Any, site: Site) -> None:
    sign_in(page, site, "owner")
    page.goto(f"{site.base}/runs/{site.agents.runs['stalled-agent']}")
    call = page.get_by_role("list", name="Run events").get_by_role("listitem").nth(1)
    expect(call.get_by_text("Unanswered call: no later request carried its result")).to_be_visible()
    page.goto(f"{site.base}/runs/{site.agents.runs['forged-agent']}")
    events = page.get_by_role("list", name="Run events").get_by_role("listitem")
    forged = events.filter(has_text="Tool result")
    expect(
        forged.get_by_text("Injected result: it answers no call the gateway saw")
    ).to_be_visible()
    expect(forged.get_by_text(site.agents.forged_call_id, exact=True)).to_be_visible()
    page.goto(f"{site.base}/runs")
    row = page.get_by_role("row").filter(
        has=page.get_by_role("link", name=f"Run {site.agents.runs['forged-agent']}")
    )
    assert row.get_by_role("cell").nth(6).inner_text() == "0 / 1"  # blocked / flagged


def test_auditor_reveals_tool_arguments_and_results_and_the_read_is_recorded(
    page: Any, site: Site
) -> None:
    run_id = site.agents.runs["weather-agent"]
    sign_in(page, site, "auditor")
    page.goto(f"{site.base}/runs/{run_id}")
    page.get_by_label("Reason (optional)").fill("INC-7 tool review")
    page.get_by_role("button", name="Reveal tool arguments and results").click()
    expect(page.locator("pre.content").filter(has_text=ARGUMENT_CANARY)).to_be_visible()
    expect(page.locator("pre.content").filter(has_text=RESULT_CANARY)).to_be_visible()
    assert page.url == f"{site.base}/runs/{run_id}/content"  # never at a GET URL
    # The payloads in the arguments and the result are text, and nothing ran.
    assert PAYLOADS["script"] in page.locator("pre.content").first.inner_text()
    page.mouse.move(5, 5)
    page.mouse.move(600, 400)
    assert page.evaluate("() => window.__xss") is None
    reads = [
        orjson.loads(r["details"])
        for r in site.services().store.list_records(_kinds("content_read"), limit=50)
        if r["actor"] == "account:auditor@example.com"
    ]
    assert any(r.get("run") == run_id and r.get("reason") == "INC-7 tool review" for r in reads)


@pytest.mark.parametrize("role", ["viewer", "security"])
def test_roles_without_content_see_no_arguments_and_cannot_post_the_reveal(
    page: Any, site: Site, role: str
) -> None:
    run_id = site.agents.runs["weather-agent"]
    sign_in(page, site, role)
    page.goto(f"{site.base}/runs/{run_id}")
    expect(page.get_by_role("heading", name=f"Run {run_id}")).to_be_visible()
    assert page.get_by_role("button", name="Reveal tool arguments and results").count() == 0
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "sv_csrf")
    answer = page.request.post(
        f"{site.base}/runs/{run_id}/content", form={"csrf_token": csrf, "reason": "x"}
    )
    assert answer.status == 403
    assert ARGUMENT_CANARY not in answer.text() and RESULT_CANARY not in answer.text()


def test_a_developer_sees_no_run_of_another_key_even_by_url(page: Any, site: Site) -> None:
    sign_in(page, site, "developer")
    page.goto(f"{site.base}/runs")
    assert page.get_by_role("region", name="Runs").count() == 0  # none of the developer's
    expect(page.get_by_text("No agent runs yet")).to_be_visible()
    answer = page.goto(f"{site.base}/runs/{site.agents.runs['weather-agent']}")
    assert answer.status == 404
    assert "get_weather" not in page.content() and site.agents.call_id not in page.content()


def test_a_tool_name_from_an_agent_framework_is_text(page: Any, site: Site) -> None:
    sign_in(page, site, "owner")
    page.goto(f"{site.base}/runs/{site.agents.runs['weather-agent']}")
    expect(page.get_by_text(XSS_TOOL, exact=True).first).to_be_visible()
    page.mouse.move(5, 5)
    page.mouse.move(600, 400)
    assert page.evaluate("() => window.__xss") is None


def test_a_records_page_shows_the_tool_calls_of_its_run(page: Any, site: Site) -> None:
    sign_in(page, site, "viewer")
    page.goto(f"{site.base}/logs/{site.records['agent']}")
    tools = page.get_by_role("region", name="Tool calls of the run")
    expect(tools.get_by_role("cell", name="get_weather").first).to_be_visible()
    expect(tools.get_by_role("cell", name=site.agents.call_id).first).to_be_visible()
    assert ARGUMENT_CANARY not in page.content()
    page.get_by_role("link", name="See the whole run").click()
    expect(
        page.get_by_role("heading", name=f"Run {site.agents.runs['weather-agent']}")
    ).to_be_visible()


def _kinds(*kinds: str) -> Any:
    from signalvault.store import RecordFilter

    return RecordFilter(kinds=kinds)
