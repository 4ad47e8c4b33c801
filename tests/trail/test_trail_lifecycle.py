"""The trail's features together: traffic sealed by the gateway, then erasure, retention and an
export; `audit verify` still finds the trail intact, and tampering after all that is caught."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
from click.testing import CliRunner

from signalvault.cli.main import cli
from signalvault.trail import retention
from tests.conftest import make_settings, running_gateway

pytestmark = pytest.mark.anyio
CANARY = "trail-lifecycle-canary-5d1e"


def chat(text: str) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


async def test_erasure_retention_and_export_leave_a_trail_that_verifies(
    tmp_path, mock_provider, monkeypatch
):
    settings = make_settings(tmp_path, mock_provider[1])
    async with running_gateway(settings) as (_, client, key):
        for user in ("alice", "bob", "carol"):
            for n in range(3):
                response = await client.post(
                    "/v1/chat/completions",
                    json=chat(f"{CANARY} {user} {n}"),
                    headers={"Authorization": f"Bearer {key}", "X-SignalVault-User": user},
                )
                assert response.status_code == 200
    # Shutdown sealed every finished record.
    env = {"SIGNALVAULT_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli, list(args), env=env)
        return result.exit_code, result.output

    def verified() -> dict:
        code, output = run("audit", "verify", "--json")
        assert code == 0, output
        return json.loads(output.strip().splitlines()[-1])

    before = verified()
    assert before["unsealed"] == 0 and before["records_checked"] >= 9

    assert run("subject", "erase", "--user", "alice", "--yes")[0] == 0
    after_erasure = verified()
    assert after_erasure["tombstones"] >= 3

    # Three days later, with a one-day retention, bob's and carol's records expire too.
    monkeypatch.setenv("SIGNALVAULT_RETENTION_DAYS", "1")
    env["SIGNALVAULT_RETENTION_DAYS"] = "1"
    later = time.time() + 3 * 86400
    monkeypatch.setattr(retention.time, "time", lambda: later)
    code, output = run("retention", "run")
    assert code == 0, output
    after_retention = verified()
    assert after_retention["tombstones"] > after_erasure["tombstones"]

    export = tmp_path / "trail.jsonl"
    code, output = run("export", "--format", "jsonl", "--out", str(export))
    assert code == 0, output
    assert run("export", "verify", str(export))[0] == 0
    assert CANARY not in export.read_text()

    # Tampering is still caught after all of that: a tombstone given back a user id.
    db = sqlite3.connect(tmp_path / "data" / "signalvault.db")
    with db:
        db.execute(
            "UPDATE audit_records SET end_user = 'alice' WHERE id = "
            "(SELECT id FROM audit_records WHERE tombstoned_at IS NOT NULL LIMIT 1)"
        )
    db.close()
    code, output = run("audit", "verify")
    assert code != 0 and "still holds" in output
