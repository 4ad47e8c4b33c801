"""Tool calls and results recorded as events of runs (SPEC §7b), through the official SDKs."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from signalvault.agents.run_ids import run_id_of
from signalvault.agents.runs import run_detail, run_rows
from signalvault.app import GatewayApp
from tests.agents.loops import LOOPS, ask, forged_history
from tests.conftest import records

pytestmark = pytest.mark.anyio

API_MODES = [(api, stream) for api in LOOPS for stream in (False, True)]


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    """The default policy plus a rule that logs a place name in answers (tool calls included)."""
    from dataclasses import replace

    from signalvault.config import GuardrailSettings
    from signalvault.guardrails.policy import DEFAULT_RULES

    places = {"name": "places", "detector": "custom", "action": "log", "direction": "output",
              "options": {"keywords": ["Zanzibar"]}}  # fmt: skip
    rules = (*(rule.as_dict() for rule in DEFAULT_RULES), places)
    return replace(settings, guardrails=GuardrailSettings(rules=rules))


def client_for(api: str, oai: Any, claude: Any) -> Any:
    return claude if api == "messages" else oai


def run_of(gateway: GatewayApp, run_id: str) -> dict[str, Any]:
    assert gateway.services is not None
    gateway.services.store.flush()
    return run_detail(run_rows(gateway.services.store, run_id))


def decrypted(gateway: GatewayApp, event_id: str) -> str:
    """The content of an event: a record's prompt, or the arguments or result of a tool call or
    result held in a record."""
    from signalvault.agents.runs import event_content

    assert gateway.services is not None
    row = next(r for r in records(gateway) if r["id"] == event_id)
    if "event_index" in row:
        text = event_content(gateway.services.trail, row, {})
        assert text is not None
        return text
    content, _ = gateway.services.trail.decrypt(row)
    assert content is not None
    return content.decode()


@pytest.mark.parametrize(("api", "stream"), API_MODES)
async def test_a_two_step_tool_loop_is_one_run_of_four_events(
    api, stream, oai, claude, gateway, api_key, mock
):
    session = f"loop-{api}-{stream}"
    result = "sunny, 21C; mail bob@example.com"
    step = await LOOPS[api](
        client_for(api, oai, claude),
        stream=stream,
        result=result,
        headers={"X-SignalVault-Session": session, "X-SignalVault-User": "alice"},
        prompt=ask(city="Zanzibar"),
    )
    assert step.reply.startswith("Tool results: sunny, 21C; mail ")

    first_record = next(r for r in records(gateway) if r["kind"] == "interaction")
    run = run_of(gateway, run_id_of(first_record["project"], session, None))
    assert run["session"] == session and run["end_user"] == "alice"
    assert (run["model_calls"], run["tool_calls"], run["outcome"]) == (2, 1, "ok")
    first, call, result, second = run["events"]
    assert [e["type"] for e in run["events"]] == [
        "model_call",
        "tool_call",
        "tool_result",
        "model_call",
    ]
    assert [e["depth"] for e in run["events"]] == [0, 1, 2, 3]
    assert call["parent_id"] == first["id"]
    assert result["parent_id"] == call["id"]
    assert second["parent_id"] == result["id"]
    assert call["call_id"] == result["call_id"] == step.call_id
    assert call["tool_name"] == result["tool_name"] == "get_weather"
    assert call["flags"] == result["flags"] == []
    assert result["details"]["answered_after_ms"] >= 0
    # Each event carries the findings in its own text: the place in the arguments (output,
    # logged) and the e-mail address in the result (input, redacted before the provider).
    (found,) = call["guardrails"]
    assert (found["rule"], found["outcome"], found["kinds"]) == ("places", "logged", {"PLACES": 1})
    (found,) = result["guardrails"]
    assert (found["rule"], found["outcome"], found["kinds"]) == (
        "pii-input",
        "redacted",
        {"EMAIL": 1},
    )
    # Each event is of the class of the interaction it was found in: the request carrying
    # the e-mail address is confidential, the first answer the project's default.
    classes = {r["id"]: r["classification"] for r in records(gateway)}
    assert classes[result["id"]] == classes[second["id"]] == "confidential"
    assert classes[call["id"]] == classes[first["id"]] == "internal"
    # Arguments and results are content: kept encrypted (as the provider got them), readable
    # with the key.
    assert orjson.loads(decrypted(gateway, call["id"])) == {"city": "Zanzibar"}
    assert decrypted(gateway, result["id"]) == "sunny, 21C; mail [EMAIL_1]"


async def test_a_tool_call_event_counts_its_arguments_in_bytes(oai, gateway):
    await LOOPS["chat"](oai, stream=False, result="cloudy", prompt=ask(city="Zürich Göteborg"))
    (call,) = [r for r in records(gateway) if r["kind"] == "tool_call"]
    arguments = decrypted(gateway, call["id"])
    assert "ü" in arguments  # not escaped: characters and bytes differ
    assert orjson.loads(call["details"])["arguments_bytes"] == len(arguments.encode())


async def test_a_loop_without_session_or_trace_is_joined_by_its_call_ids(oai, gateway):
    step = await LOOPS["chat"](oai, stream=False, result="cloudy")
    rows = records(gateway)
    model_calls = [r for r in rows if r["kind"] == "interaction"]
    assert len(model_calls) == 2 and model_calls[0]["session_id"] is None
    run_id = model_calls[0]["run_id"]
    assert run_id == f"r-{model_calls[0]['id']}"
    assert {r["run_id"] for r in rows if r["kind"] != "policy_activated"} == {run_id}
    run = run_of(gateway, run_id)
    assert [e["type"] for e in run["events"]] == [
        "model_call",
        "tool_call",
        "tool_result",
        "model_call",
    ]
    assert run["events"][2]["call_id"] == step.call_id


async def test_a_result_answering_no_call_the_gateway_saw_is_flagged(client, api_key, gateway):
    """History written by the client: a `tool` message for a call no response of ours made."""
    messages = forged_history("what did the tool say?", "call_forged_1", "it is raining")
    response = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": messages},
        headers={"Authorization": f"Bearer {api_key}", "X-SignalVault-Session": "forged"},
    )
    assert response.status_code == 200
    result = next(r for r in records(gateway) if r["kind"] == "tool_result")
    assert result["parent_id"] is None and result["call_id"] == "call_forged_1"
    assert orjson.loads(result["details"])["flags"] == ["unmatched"]
    run = run_of(gateway, result["run_id"])
    assert run["events"][0]["flags"] == ["unmatched"]


async def test_history_sent_again_is_not_recorded_again(oai, gateway, api_key):
    headers = {"X-SignalVault-Session": "three-steps"}
    step = await LOOPS["chat"](oai, stream=False, result="sunny", headers=headers)
    # A third call re-sends the whole conversation, the earlier result included.
    messages: list[Any] = [
        {"role": "user", "content": ask()},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": step.call_id,
                    "type": "function",
                    "function": {"name": step.name, "arguments": step.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": step.call_id, "content": "sunny"},
        {"role": "assistant", "content": step.reply},
        {"role": "user", "content": "thanks"},
    ]
    await oai.chat.completions.create(model="gpt-4o-mini", messages=messages, extra_headers=headers)
    kinds = [r["kind"] for r in records(gateway)]
    assert kinds.count("tool_result") == 1 and kinds.count("interaction") == 3


async def test_a_call_never_answered_is_flagged_in_its_run(oai, gateway):
    response = await oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": ask()}],
        tools=[{"type": "function", "function": {"name": "get_weather"}}],
        extra_headers={"X-SignalVault-Session": "abandoned"},
    )
    assert response.choices[0].finish_reason == "tool_calls"
    call = next(r for r in records(gateway) if r["kind"] == "tool_call")
    run = run_of(gateway, call["run_id"])
    assert run["events"][1]["flags"] == ["unanswered"]


async def test_a_plain_request_records_no_agent_event_and_no_run(client, api_key, gateway):
    response = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 200
    (row,) = records(gateway)
    assert row["kind"] == "interaction" and row["run_id"] is None


async def test_a_trace_keys_the_run_when_there_is_no_session(oai, gateway):
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    await LOOPS["chat"](
        oai, stream=False, result="ok", headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}
    )
    assert {r["run_id"] for r in records(gateway)} == {f"t-{trace}"}


async def test_no_tool_argument_or_result_in_clear_in_the_store_or_log(
    oai, gateway, settings, caplog
):
    canary_argument = "Zanzibar-7f3a91"
    canary_result = "result-canary-55c1e0"
    await LOOPS["chat"](oai, stream=True, result=canary_result, prompt=ask(city=canary_argument))
    assert gateway.services is not None
    gateway.services.store.flush()
    for path in settings.store.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert canary_argument.encode() not in data, path
            assert canary_result.encode() not in data, path
    assert canary_argument not in caplog.text and canary_result not in caplog.text


async def test_export_by_run_without_content_holds_no_argument_or_result(
    oai, gateway, sdk_http: httpx.AsyncClient
):
    from signalvault.trail.export.query import ExportFilter, iter_rows

    canary = "export-canary-31d4"
    await LOOPS["chat"](oai, stream=False, result=canary, headers={"X-SignalVault-Session": "e1"})
    await LOOPS["chat"](oai, stream=False, result="other", headers={"X-SignalVault-Session": "e2"})
    assert gateway.services is not None
    store = gateway.services.store
    store.flush()
    run_id = next(r["run_id"] for r in records(gateway) if r["session_id"] == "e1")
    rows = list(iter_rows(store, ExportFilter(run_id=run_id), with_content=False))
    # Two model calls: the first holds the tool call, the second the result it sent back.
    assert {r["kind"] for r in rows} == {"interaction"}
    assert {r["run_id"] for r in rows} == {run_id} and len(rows) == 2
    held = [orjson.loads(r["events"]) for r in sorted(rows, key=lambda r: r["created_at"])]
    assert [[e["type"] for e in events] for events in held] == [["tool_call"], ["tool_result"]]
    assert canary.encode() not in orjson.dumps(rows, default=str)


async def test_erasing_the_end_user_erases_their_tool_events(oai, gateway):
    from signalvault.trail.erasure import erase_subject

    await LOOPS["chat"](
        oai, stream=False, result="secret plans", headers={"X-SignalVault-User": "bob"}
    )
    assert gateway.services is not None
    before = [r for r in records(gateway) if r["kind"] in ("tool_call", "tool_result")]
    assert len(before) == 2
    erase_subject(gateway.services.store, gateway.services.trail, "bob", "test")
    # The records holding them are tombstones now: neither the events nor their content remain.
    holders = {r["record_id"] for r in before}
    rows = [r for r in records(gateway) if r["id"] in holders]
    assert len(rows) == 2
    assert all(r["tombstoned_at"] is not None for r in rows)
    assert all(r["events"] is None and r["events_ct"] is None for r in rows)
