"""The evidence features over the admin API: content per class (SPEC §7c) on every content path,
the class filter of `/api/logs`, incidents, and the report in both forms."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from signalvault.config import ClassificationSettings
from signalvault.trail.export import manifest as manifests
from tests.control.test_admin_api import DEVELOPER, person, world_for
from tests.evidence.helpers import AWS_KEY, EMAIL

pytestmark = pytest.mark.anyio
AUDITOR_ONLY = ClassificationSettings(content_roles={"restricted": ("auditor",)})


@pytest.fixture
async def world(settings, mock):
    async with world_for(replace(settings, classification=AUDITOR_ONLY)) as found:
        found.new_key("dev-alpha", "alpha", DEVELOPER)
        yield found


async def blocked(world) -> str:
    """A restricted record: a request with a secret, blocked (its content is kept masked)."""
    answer = await world.client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"k {AWS_KEY}"}]},
        headers={"Authorization": f"Bearer {world.keys['dev-alpha']}"},
    )
    assert answer.status_code == 400
    return answer.headers["x-signalvault-request-id"]


async def test_content_of_a_class_is_read_only_by_the_roles_it_names(world):
    restricted = await blocked(world)
    confidential = await world.chat("dev-alpha", f"mail {EMAIL}")
    owner = world.token(person("owner", "global"))
    auditor = world.token(person("auditor", "global"))
    refused = await world.client.get(f"/api/logs/{restricted}?content=true", headers=owner)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "classification_forbidden"
    read = await world.client.get(f"/api/logs/{restricted}?content=true", headers=auditor)
    assert read.status_code == 200 and read.json()["prompt"] is not None
    assert AWS_KEY not in read.text  # the blocked secret was masked before it was stored
    # Other classes keep the roles of SPEC §5: the owner reads them.
    other = await world.client.get(f"/api/logs/{confidential}?content=true", headers=owner)
    assert other.status_code == 200 and other.json()["prompt"] is not None
    exported = await world.client.get(
        "/api/export?include_content=true&format=jsonl", headers=owner
    )
    rows = {r["id"]: r for r in map(orjson.loads, exported.text.splitlines())}
    assert rows[restricted]["content_withheld"] is True and rows[restricted]["prompt"] is None
    assert rows[confidential]["content_withheld"] is False and rows[confidential]["prompt"]


async def test_logs_and_exports_filter_by_class(world):
    await blocked(world)
    await world.chat("dev-alpha", "hello")
    owner = world.token(person("owner", "global"))
    listed = await world.client.get("/api/logs?classification=restricted", headers=owner)
    assert [r["classification"] for r in listed.json()["data"]] == ["restricted"]
    exported = await world.client.get("/api/export?classification=internal", headers=owner)
    classes = {orjson.loads(line)["classification"] for line in exported.text.splitlines()}
    assert classes == {"internal"}


async def test_incidents_over_the_api(world):
    await blocked(world)
    assert world.app.evidence.desk is not None
    world.app.evidence.desk.drain()
    security = world.token(person("security", "global"))
    viewer = world.token(person("viewer", "global"))
    page = (await world.client.get("/api/incidents?status=open", headers=viewer)).json()
    [incident] = page["data"]
    assert incident["kind"] == "secrets_blocked" and page["response_times"]["resolve"]["count"] == 0
    denied = await world.client.post(
        f"/api/incidents/{incident['id']}/ack", json={}, headers=viewer
    )
    assert denied.status_code == 403
    acked = await world.client.post(
        f"/api/incidents/{incident['id']}/ack", json={"note": "on it"}, headers=security
    )
    assert acked.json()["status"] == "acknowledged"
    empty = await world.client.post(
        f"/api/incidents/{incident['id']}/resolve", json={"note": ""}, headers=security
    )
    assert empty.status_code == 400
    done = await world.client.post(
        f"/api/incidents/{incident['id']}/resolve", json={"note": "rotated"}, headers=security
    )
    assert done.json()["status"] == "resolved" and done.json()["seconds_to_resolve"] >= 0
    detail = (await world.client.get(f"/api/incidents/{incident['id']}", headers=viewer)).json()
    assert len(detail["record_ids"]) == 1


async def test_the_report_over_the_api_is_signed_json_or_html(world):
    await world.chat("dev-alpha", "hello")
    auditor = world.token(person("auditor", "global"))
    answer = await world.client.get("/api/reports/soc2?since=7d", headers=auditor)
    report = answer.json()
    assert answer.status_code == 200 and len(report["criteria"]) == 24
    assert manifests.check_signature(report).is_ok
    page = await world.client.get("/api/reports/soc2?format=html", headers=auditor)
    assert page.headers["content-type"].startswith("text/html")
    assert "SOC 2 evidence report" in page.text
    bad = await world.client.get("/api/reports/soc2?since=1d&until=2d", headers=auditor)
    assert bad.status_code == 400
