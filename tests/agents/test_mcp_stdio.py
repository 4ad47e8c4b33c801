"""A stdio MCP server behind `signalvault serve` (separate processes, debug logging, spans going
to a collector): calls work, a blocked call never reaches the process, and no tool argument or
result is left in clear in the store's files, the gateway's log or the exported spans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
from mcp.shared.exceptions import MCPError

from signalvault.agents.mcp.calls import GUARDRAIL_BLOCKED
from tests.agents.mcp_fixtures import mcp_client
from tests.agents.otlp_receiver import Receiver
from tests.e2e.test_serve import free_port, signalvault, wait_http

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
CANARY = "canary-stdio-argument-9a4f07"
AWS_KEY = "AKIA" + "Q3VZ7TXK2MBN4PLD"


async def test_a_stdio_server_behind_serve_leaves_no_content_in_clear(tmp_path: Path):
    receiver = Receiver().start()
    calls_file, data_dir, port = tmp_path / "calls.jsonl", tmp_path / "data", free_port()
    config = tmp_path / "signalvault.toml"
    args = [
        "-m",
        "signalvault",
        "mock-mcp",
        "--transport",
        "stdio",
        "--calls-file",
        str(calls_file),
    ]
    config.write_text(
        '[logging]\nlevel = "debug"\n\n'
        f'[telemetry]\notlp_endpoint = "{receiver.endpoint}"\nexport_interval_seconds = 0.1\n\n'
        f'[[mcp_servers]]\nname = "local"\ncommand = {json.dumps(sys.executable)}\n'
        f"args = {json.dumps(args)}\n"
    )
    env = {**os.environ, "SIGNALVAULT_DATA_DIR": str(data_dir)}
    made = signalvault(
        "keys",
        "create",
        "--name",
        "agent",
        "--env",
        "dev",
        "--json",
        "--config",
        str(config),
        env=env,
    )
    assert made.returncode == 0, made.stderr
    key = orjson.loads(made.stdout)["secret"]
    log_path = tmp_path / "gateway.log"
    command = ["serve", "--config", str(config), "--port", str(port)]
    with log_path.open("wb") as log:
        gateway = subprocess.Popen(
            [sys.executable, "-m", "signalvault", *command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", gateway)
        async with mcp_client(f"http://127.0.0.1:{port}/mcp/local", key) as client:
            echoed = await client.call_tool("echo", {"text": CANARY})
            failed = await client.call_tool("fail", {"text": CANARY})
            with pytest.raises(MCPError) as blocked:
                await client.call_tool("echo", {"text": f"use {AWS_KEY}"})
        assert echoed.content[0].text == CANARY  # type: ignore[union-attr]
        assert failed.is_error is True
        assert blocked.value.code == GUARDRAIL_BLOCKED
        reached = [json.loads(line) for line in calls_file.read_text().splitlines()]
        assert [call["name"] for call in reached] == ["echo", "fail"]  # never the blocked one
        receiver.wait_for(lambda: len(receiver.spans) >= 3)
        logs = httpx.get(
            f"http://127.0.0.1:{port}/api/logs", headers={"Authorization": f"Bearer {key}"}
        )
        assert logs.status_code == 401  # a gateway key is no admin credential
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=60)
        receiver.stop()
    assert gateway.returncode == 0
    stored = [p for p in data_dir.rglob("*") if p.is_file()]
    assert stored
    for secret in (CANARY.encode(), AWS_KEY.encode()):
        for path in stored:
            assert secret not in path.read_bytes(), path.name
        assert secret not in log_path.read_bytes()
        assert all(secret not in body for body in receiver.bodies)
    assert b"mcp" in log_path.read_bytes()  # the debug log did run (and said nothing of content)
