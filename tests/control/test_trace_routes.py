"""/api/traces: runs for every role that reads logs, tool content only through audited reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from signalvault.control.accounts.principal import ROLES, Principal
from tests.control.test_admin_api import DEVELOPER, World, person, world_for

pytestmark = pytest.mark.anyio

TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
ARGUMENT_CANARY = "argument-canary-9c2d"
RESULT_CANARY = "result-canary-4e81"


@pytest.fixture
async def world(settings: Any, mock: Any) -> AsyncIterator[World]:
    async with world_for(settings) as found:
        found.new_key("dev-alpha", "alpha", DEVELOPER)
        yield found


async def tool_loop(world: World, key_name: str, session: str) -> str:
    """A two-step loop in `session`; returns its run id."""
    headers = {
        "Authorization": f"Bearer {world.keys[key_name]}",
        "X-SignalVault-Session": session,
    }
    ask = f'look it up [[mock:tool=lookup {{"q": "{ARGUMENT_CANARY}"}}]]'
    messages: list[Any] = [{"role": "user", "content": ask}]
    first = await world.client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": messages, "tools": TOOLS},
        headers=headers,
    )
    message = first.json()["choices"][0]["message"]
    messages += [
        message,
        {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": RESULT_CANARY},
    ]
    second = await world.client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": messages, "tools": TOOLS},
        headers=headers,
    )
    assert second.status_code == 200
    world.services.store.flush()
    record = world.services.store.get_record(second.headers["x-signalvault-request-id"])
    assert record is not None
    return str(record["run_id"])


async def test_runs_list_and_tree_without_content_for_every_reader(world: World) -> None:
    run_id = await tool_loop(world, "dev-alpha", "traces-1")
    listed = await world.client.get("/api/traces", headers=world.token(person("viewer", "own")))
    assert listed.status_code == 200
    (run,) = [r for r in listed.json()["data"] if r["id"] == run_id]
    assert set(run) == {
        "id", "session", "trace_id", "end_user", "started_at", "ended_at",
        "model_calls", "tool_calls", "outcome",
    }  # fmt: skip
    assert (run["session"], run["model_calls"], run["tool_calls"]) == ("traces-1", 2, 1)
    detail = await world.client.get(
        f"/api/traces/{run_id}", headers=world.token(person("viewer", "own"))
    )
    events = detail.json()["events"]
    assert [e["type"] for e in events] == ["model_call", "tool_call", "tool_result", "model_call"]
    assert all(e["content"] is None for e in events)
    assert ARGUMENT_CANARY not in detail.text and RESULT_CANARY not in detail.text
    other = await world.client.get(
        f"/api/traces/{run_id}", headers=world.token(person("viewer", "other"))
    )
    assert other.status_code == 404


async def test_tool_content_is_read_only_by_content_roles_and_each_read_is_recorded(
    world: World,
) -> None:
    run_id = await tool_loop(world, "dev-alpha", "traces-2")
    for role in ROLES:
        before = len(world.records("content_read"))
        response = await world.client.get(
            f"/api/traces/{run_id}?content=true&reason=INC-{role}",
            headers=world.token(person(role, "own")),
        )
        reads = world.records("content_read")
        if role in ("owner", "auditor"):
            assert response.status_code == 200
            contents = {e["type"]: e["content"] for e in response.json()["events"]}
            assert ARGUMENT_CANARY in contents["tool_call"]
            assert contents["tool_result"] == RESULT_CANARY
            assert len(reads) == before + 1
            details = orjson.loads(reads[0]["details"])
            assert details["run"] == run_id and len(details["records"]) == 2
            assert details["reason"] == f"INC-{role}"
        else:
            assert response.status_code in (403, 404)
            assert len(reads) == before


async def test_runs_page_with_a_cursor(world: World) -> None:
    for n in range(3):
        await tool_loop(world, "dev-alpha", f"paged-{n}")
    owner = world.token(Principal("acc-o", "owner@example.com", {None: "owner"}))
    seen: list[str] = []
    url = "/api/traces?limit=2"
    while url:
        page = (await world.client.get(url, headers=owner)).json()
        seen += [run["id"] for run in page["data"]]
        url = f"/api/traces?limit=2&cursor={page['next_cursor']}" if page["next_cursor"] else ""
    assert len(seen) == len(set(seen)) >= 3
    bad = await world.client.get("/api/traces?cursor=nonsense", headers=owner)
    assert bad.status_code == 400


async def test_runs_filter_by_start_time_and_refuse_a_bad_time(world: World) -> None:
    run_id = await tool_loop(world, "dev-alpha", "traces-period")
    owner = world.token(person("owner", "global"))
    recent = await world.client.get("/api/traces", params={"since": "1h"}, headers=owner)
    assert run_id in {r["id"] for r in recent.json()["data"]}
    older = await world.client.get("/api/traces", params={"until": "1h"}, headers=owner)
    assert older.status_code == 200 and older.json()["data"] == []
    bad = await world.client.get("/api/traces", params={"since": "yesterday"}, headers=owner)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request_error"
