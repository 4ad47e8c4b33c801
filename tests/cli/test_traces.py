"""`signalvault traces list/show`: runs as SPEC §7b says, metadata only."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from signalvault.cli.main import cli
from tests.agents.conftest import openai_for
from tests.agents.loops import LOOPS

pytestmark = pytest.mark.anyio
CANARY = "cli-result-canary-77a1"


@pytest.fixture
def run(settings, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"SIGNALVAULT_DATA_DIR": str(settings.store.data_dir), "SIGNALVAULT_CONFIG": ""}

    def invoke(*args: str):
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


async def test_traces_list_is_one_json_array_and_show_is_the_tree(client, api_key, gateway, run):
    oai = openai_for(client, api_key)
    headers = {"X-SignalVault-Session": "cli-run", "X-SignalVault-User": "carol"}
    await LOOPS["chat"](oai, stream=False, result=CANARY, headers=headers)
    await LOOPS["chat"](oai, stream=False, result="other run")  # no session: a run of its own
    assert gateway.services is not None
    gateway.services.store.flush()

    listed = run("traces", "list", "--json")
    assert listed.exit_code == 0
    runs = orjson.loads(listed.output)
    assert isinstance(runs, list) and len(runs) == 2
    assert set(runs[0]) == {
        "id", "session", "trace_id", "end_user", "started_at", "ended_at",
        "model_calls", "tool_calls", "outcome",
    }  # fmt: skip
    (mine,) = orjson.loads(run("traces", "list", "--json", "--session", "cli-run").output)
    assert (mine["end_user"], mine["model_calls"], mine["tool_calls"]) == ("carol", 2, 1)
    assert orjson.loads(run("traces", "list", "--json", "--user", "nobody").output) == []
    assert len(orjson.loads(run("traces", "list", "--json", "--limit", "1").output)) == 1

    shown = orjson.loads(run("traces", "show", mine["id"], "--json").output)
    assert [e["type"] for e in shown["events"]] == [
        "model_call",
        "tool_call",
        "tool_result",
        "model_call",
    ]
    text = run("traces", "show", mine["id"]).output
    lines = text.strip().splitlines()
    assert lines[0].startswith(f"run {mine['id']}") and "session=cli-run" in lines[0]
    # Each event indented under the one it answers: call, then result, then the next call.
    assert "Z    tool_call get_weather" in lines[2]
    assert "Z      tool_result get_weather" in lines[3]
    assert "Z        model_call gpt-4o-mini" in lines[4]
    table = run("traces", "list").output
    assert mine["id"] in table
    for output in (listed.output, text, table):
        assert CANARY not in output


def test_traces_show_of_an_unknown_run_is_a_one_line_error(run):
    result = run("traces", "show", "s-nothing")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert result.output.strip() == "Error: no run 's-nothing'"
