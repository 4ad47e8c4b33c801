"""Tool calls and results held in the record they were found in (trail.linked, migration 0013):
sealed with it, found by call id from another process, and gone with it."""

from __future__ import annotations

import gc
from typing import Any

import orjson
import pytest
from sqlalchemy import select, text

from signalvault.agents.capture import ToolEvents
from signalvault.app import GatewayApp
from signalvault.crypto.master_key import load_master_key
from signalvault.store.schema import tool_call_links
from signalvault.trail.audit import Interaction
from signalvault.trail.integrity.verify import verify_trail
from tests.agents.loops import LOOPS, ask_for_a_tool, forged_history, send_result
from tests.conftest import records

pytestmark = pytest.mark.anyio


def held(gateway: GatewayApp, kind: str) -> dict[str, Any]:
    return next(r for r in records(gateway) if r["kind"] == kind)


def links(gateway: GatewayApp) -> list[dict[str, Any]]:
    assert gateway.services is not None
    with gateway.services.store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(select(tool_call_links))]


def sealed_and_verified(gateway: GatewayApp, settings: Any) -> str:
    assert gateway.services is not None
    gateway.services.store.flush()
    gateway.services.sealer.seal()
    master_key = load_master_key(settings.crypto, settings.store.data_dir)
    return verify_trail(gateway.services.store, master_key, settings.audit).status


async def test_a_loop_writes_no_record_per_event_and_one_link_per_call(oai, gateway):
    """The call gets a link row; the result answering it, held in a record of the call's run,
    gets none (another process finds it among the run's records)."""
    step = await LOOPS["chat"](oai, stream=False, result="sunny")
    kinds = [r["kind"] for r in records(gateway) if "event_index" not in r]
    assert kinds == ["interaction", "interaction"]
    call, result = held(gateway, "tool_call"), held(gateway, "tool_result")
    assert call["record_id"] != result["record_id"] and call["run_id"] == result["run_id"]
    assert [(r["kind"], r["event_id"], r["call_id"]) for r in links(gateway)] == [
        ("tool_call", call["id"], step.call_id)
    ]


def _fresh_index(gateway: GatewayApp, project: str | None, call_id: str) -> Any:
    """What another process (empty memory) knows of `call_id`, from the store."""
    assert gateway.services is not None
    gateway.services.store.flush()
    fresh = ToolEvents(gateway.services.trail, gateway.services.store)
    return fresh.calls.find(project, [call_id]).get(call_id)


async def test_a_result_answering_no_known_call_gets_a_link_of_its_own(oai, gateway):
    """History the client wrote: the store knows no such call, so the result's own row is what
    tells another process that it was recorded."""
    messages = forged_history("What is the weather?", "call_made_up", "sunny")
    await oai.chat.completions.create(model="gpt-4o-mini", messages=messages)
    result = held(gateway, "tool_result")
    assert [(r["kind"], r["event_id"]) for r in links(gateway)] == [("tool_result", result["id"])]
    known = _fresh_index(gateway, result["project"], "call_made_up")
    assert known.is_answered and known.record_id is None


async def test_a_result_sent_in_another_run_than_its_call_gets_a_link_of_its_own(oai, gateway):
    """A call made without a session, answered under one: the answer is held in the session's
    run, where a search of the call's run would not find it, so it gets its own row."""
    call_id, messages = await ask_for_a_tool(oai)
    await send_result(oai, messages, call_id, "sunny", {"X-SignalVault-Session": "later"})
    call, result = held(gateway, "tool_call"), held(gateway, "tool_result")
    assert call["run_id"] != result["run_id"]
    assert sorted((r["kind"], r["event_id"]) for r in links(gateway)) == [
        ("tool_call", call["id"]),
        ("tool_result", result["id"]),
    ]
    assert _fresh_index(gateway, call["project"], call_id).is_answered


async def test_only_a_result_of_its_id_answers_a_call_for_another_process(oai, gateway):
    """In one run (a session), call A left unanswered and call B answered: the run's records
    name A (its own call event) and hold a result (B's), yet A stays open and B is answered."""
    session = {"X-SignalVault-Session": "two-calls"}
    open_id, _ = await ask_for_a_tool(oai, session)
    answered_id, messages = await ask_for_a_tool(oai, session)
    await send_result(oai, messages, answered_id, "sunny", session)
    calls = {r["call_id"]: r for r in records(gateway) if r["kind"] == "tool_call"}
    project = calls[open_id]["project"]
    assert calls[open_id]["run_id"] == calls[answered_id]["run_id"]
    still_open = _fresh_index(gateway, project, open_id)
    assert still_open.record_id == calls[open_id]["id"] and not still_open.is_answered
    assert _fresh_index(gateway, project, answered_id).is_answered


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_loops_records_are_freed_without_the_cycle_collector(oai, gateway, stream):
    """A record's events point back at it (ToolEvent.holder). Once it is complete nothing may
    hold them, or every tool request's record, with its dicts and lists, lingers until the cycle
    collector runs: extra collections the requests pay for (bench/tool_capture.py)."""
    gc.collect()
    gc.disable()
    try:
        await LOOPS["chat"](oai, stream=stream, result="sunny")
        assert gateway.services is not None
        gateway.services.store.flush()
        lingering = [o for o in gc.get_objects() if isinstance(o, Interaction)]
    finally:
        gc.enable()
    assert lingering == []
    assert {r["kind"] for r in records(gateway)} >= {"tool_call", "tool_result"}


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE audit_records SET events = replace(events, 'get_weather', 'get_secrets')",
        "UPDATE audit_records SET events = NULL, events_ct = NULL, tool_calls = NULL",
        "UPDATE audit_records SET tool_calls = 2 WHERE tool_calls = 1",
    ],
    ids=["renamed", "removed", "recounted"],
)
async def test_a_held_event_changed_after_its_seal_fails_verify(oai, gateway, settings, change):
    await LOOPS["chat"](oai, stream=False, result="sunny")
    assert sealed_and_verified(gateway, settings) == "intact"
    assert gateway.services is not None
    with gateway.services.store.engine.begin() as conn:
        assert conn.execute(text(change)).rowcount
    assert sealed_and_verified(gateway, settings) == "tampered"


async def test_another_process_finds_a_call_by_its_id(oai, gateway):
    """A result answering a call made through another replica (or before a restart): a new
    call index has nothing in memory and finds the call in the store."""
    step = await LOOPS["chat"](oai, stream=False, result="sunny")
    call = held(gateway, "tool_call")
    assert gateway.services is not None
    fresh = ToolEvents(gateway.services.trail, gateway.services.store)
    found = fresh.calls.find(call["project"], [step.call_id, "call_unknown"])
    assert set(found) == {step.call_id}
    known = found[step.call_id]
    assert (known.record_id, known.run_id, known.tool_name) == (
        call["id"],
        call["run_id"],
        "get_weather",
    )
    assert known.is_answered  # the result was recorded: history sent again is not new
    assert fresh.latest.find(call["run_id"], "get_weather") == call["id"]
    assert fresh.runs.get(call["run_id"]) == [2, 1]


async def test_erasure_removes_the_call_links_of_the_subject(oai, gateway):
    from signalvault.trail.erasure import erase_subject

    await LOOPS["chat"](oai, stream=False, result="x", headers={"X-SignalVault-User": "carol"})
    await LOOPS["chat"](oai, stream=False, result="y", headers={"X-SignalVault-User": "dave"})
    assert len(links(gateway)) == 2  # the calls' (their results are found in their runs)
    assert gateway.services is not None
    erase_subject(gateway.services.store, gateway.services.trail, "carol", "test")
    dave = {r["id"] for r in records(gateway) if r.get("end_user") == "dave"}
    [left] = links(gateway)
    assert left["record_id"] in dave


async def test_retention_removes_the_call_links_of_expired_records(oai, gateway):
    from signalvault.store.lifecycle import Cutoffs

    await LOOPS["chat"](oai, stream=False, result="x")
    assert gateway.services is not None
    store = gateway.services.store
    store.flush()
    assert len(links(gateway)) == 1  # the call's
    future = Cutoffs(default=9e12)
    ids = [r["id"] for r in store.find_expired(future, 100)]
    assert store.tombstone_expired(future, ids, "retention", 1.0) == len(ids)
    assert links(gateway) == []


async def test_a_record_lists_the_events_it_holds_as_metadata(oai, gateway):
    """What `logs --json`, `/api/logs` and exports show of a record: its events' metadata."""
    from signalvault.trail.record_json import record_json

    await LOOPS["chat"](oai, stream=False, result="result-canary-0b1d")
    call = held(gateway, "tool_call")
    holder = next(r for r in records(gateway) if r["id"] == call["record_id"])
    shown = record_json(holder)
    assert shown["tool_calls"] == 1
    assert [(e["type"], e["id"], e["call_id"]) for e in shown["events"]] == [
        ("tool_call", call["id"], call["call_id"])
    ]
    assert b"result-canary-0b1d" not in orjson.dumps(shown)


async def test_a_result_through_another_postgres_replica_answers_the_call(
    tmp_path, mock_provider, pg_url, mock
):
    """Two replicas on one PostgreSQL store: the call goes through one, its result through the
    other, which finds the call by its id in the store; the records seal and verify."""
    from signalvault.config import Secret
    from tests.conftest import make_settings, running_gateway

    settings = make_settings(tmp_path, mock_provider[1], database_url=Secret(pg_url))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    ask = 'weather? [[mock:tool=get_weather {"city": "Lima"}]]'
    body: dict[str, Any] = {"model": "gpt-4o-mini", "tools": tools}
    body["messages"] = [{"role": "user", "content": ask}]
    async with (
        running_gateway(settings) as (first, first_client, key),
        running_gateway(settings) as (_, second_client, _),
    ):
        auth = {"Authorization": f"Bearer {key}"}
        answer = await first_client.post("/v1/chat/completions", json=body, headers=auth)
        message = answer.json()["choices"][0]["message"]
        call_id = message["tool_calls"][0]["id"]
        body["messages"] += [message, {"role": "tool", "tool_call_id": call_id, "content": "dry"}]
        first.services.store.flush()  # the call's completion is written behind
        answer = await second_client.post("/v1/chat/completions", json=body, headers=auth)
        assert answer.status_code == 200, answer.text
        call, result = held(first, "tool_call"), held(first, "tool_result")
        assert result["parent_id"] == call["id"] and result["run_id"] == call["run_id"]
        assert "flags" not in (orjson.loads(result["details"]) if result["details"] else {})
        # A third process finds the call answered: by the result held in the run's records
        # (PostgreSQL's LIKE on the events JSON), there being no link row of the result.
        assert [r["kind"] for r in links(first)] == ["tool_call"]
        assert _fresh_index(first, call["project"], call_id).is_answered
        assert sealed_and_verified(first, settings) == "intact"
