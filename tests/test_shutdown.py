"""Graceful shutdown of a real `signalvault serve` process: on SIGTERM it stops accepting, lets a
stream in flight finish within `[server] shutdown_grace_seconds`, records its outcome, flushes the
trail and exits 0; a stream still open at the deadline is recorded as cut, never left `unknown`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import orjson
import pytest

from signalvault.app import create_app
from signalvault.mock_provider import MockOptions
from tests.e2e.test_serve import free_port, signalvault, wait_http

PROVIDER_KEY = "sk-shutdown-provider-key-7a2c"


class Gateway:
    """A slow-streaming mock provider (20 chunks, 100 ms apart) and a gateway, as processes."""

    def __init__(self, tmp: Path, grace_seconds: float) -> None:
        self.env = {
            **os.environ,
            "SIGNALVAULT_DATA_DIR": str(tmp / "data"),
            "SHUTDOWN_PROVIDER_KEY": PROVIDER_KEY,
        }
        self.mock_port, self.port = free_port(), free_port()
        self.config = tmp / "signalvault.toml"
        self.config.write_text(
            f"[server]\nshutdown_grace_seconds = {grace_seconds}\n\n"
            f'[[providers]]\nname = "slow"\nkind = "openai"\n'
            f'base_url = "http://127.0.0.1:{self.mock_port}/v1"\n'
            'api_key_env = "SHUTDOWN_PROVIDER_KEY"\nmodels = ["gpt-*"]\n'
        )
        self.tmp = tmp
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        mock = self._spawn(
            "mock-provider", "--port", str(self.mock_port), "--chunks", "20",
            "--chunk-delay-ms", "100",
        )  # fmt: skip
        wait_http(f"http://127.0.0.1:{self.mock_port}/health", mock)
        made = signalvault(
            "keys", "create", "--name", "t", "--env", "dev", "--json",
            "--config", str(self.config), env=self.env,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        self.key = orjson.loads(made.stdout)["secret"]
        self.gateway = self._spawn("serve", "--config", str(self.config), "--port", str(self.port))
        wait_http(f"http://127.0.0.1:{self.port}/readyz", self.gateway)

    def _spawn(self, *args: str) -> subprocess.Popen:
        log = (self.tmp / f"{args[0]}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "signalvault", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    def stream_then_terminate(self) -> tuple[bytes, str]:
        """Start a streamed chat, send SIGTERM once its first bytes arrived; the whole body the
        client received and its request id."""
        first_bytes = threading.Event()
        body = bytearray()
        request_id = ""

        def run() -> None:
            nonlocal request_id
            with httpx.stream(
                "POST",
                f"http://127.0.0.1:{self.port}/v1/chat/completions",
                json={
                    "model": "gpt-4o-mini",
                    "stream": True,
                    "messages": [{"role": "user", "content": "tell me a slow story please"}],
                },
                headers={"Authorization": f"Bearer {self.key}"},
                timeout=30,
            ) as response:
                request_id = response.headers["x-signalvault-request-id"]
                try:
                    for chunk in response.iter_raw():
                        body.extend(chunk)
                        first_bytes.set()
                except httpx.HTTPError:
                    pass  # cut by the server at the deadline
            first_bytes.set()

        client = threading.Thread(target=run)
        client.start()
        assert first_bytes.wait(15)
        self.gateway.send_signal(signal.SIGTERM)
        client.join(30)
        return bytes(body), request_id

    def record(self, request_id: str) -> dict:
        result = signalvault(
            "logs", "--json", "--limit", "10", "--config", str(self.config), env=self.env
        )
        assert result.returncode == 0, result.stderr
        rows = [orjson.loads(line) for line in result.stdout.splitlines()]
        return next(r for r in rows if r["id"] == request_id)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()


@pytest.fixture
def gateway_factory(tmp_path: Path):
    made: list[Gateway] = []

    def make(grace_seconds: float) -> Gateway:
        gateway = Gateway(tmp_path, grace_seconds)
        made.append(gateway)
        gateway.start()
        return gateway

    yield make
    for gateway in made:
        gateway.stop()


def streamed_text(body: bytes) -> str:
    text = []
    for line in body.decode().splitlines():
        if line.startswith("data: {"):
            for choice in orjson.loads(line[6:]).get("choices", []):
                text.append(choice["delta"].get("content") or "")
    return "".join(text)


@pytest.mark.e2e
def test_sigterm_lets_a_stream_in_flight_finish_and_exits_cleanly(gateway_factory):
    gateway = gateway_factory(grace_seconds=30)
    body, request_id = gateway.stream_then_terminate()
    assert gateway.gateway.wait(30) == 0
    assert streamed_text(body) == "You said: tell me a slow story please"
    assert body.rstrip().endswith(b"data: [DONE]")
    with pytest.raises(httpx.ConnectError):  # no longer accepting
        httpx.get(f"http://127.0.0.1:{gateway.port}/healthz", timeout=2)
    record = gateway.record(request_id)
    assert record["outcome"] == "ok" and record["completed_at"] is not None


@pytest.mark.e2e
def test_a_stream_still_open_at_the_deadline_is_recorded_as_cut(gateway_factory):
    gateway = gateway_factory(grace_seconds=0.5)
    body, request_id = gateway.stream_then_terminate()
    assert gateway.gateway.wait(30) == 0
    assert b"[DONE]" not in body  # the 2 s stream could not finish in 0.5 s
    record = gateway.record(request_id)
    assert record["outcome"] == "stream_cut" and record["completed_at"] is not None


@pytest.mark.anyio
async def test_a_request_cancelled_before_its_response_is_recorded_at_shutdown(
    settings, mock, monkeypatch
):
    monkeypatch.setattr(mock, "options", MockOptions(hang_rate=1.0))  # never answers
    app = create_app(settings)
    await app.startup()
    _, key = app.services.keyring.create(name="t", environment="dev")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://g") as client:
        request = asyncio.ensure_future(
            client.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {key}"},
            )
        )
        while mock.stats()["total"] == 0:  # written ahead and forwarded
            await asyncio.sleep(0.01)
        request.cancel()  # as the server does to requests still running past the grace period
        with pytest.raises(asyncio.CancelledError):
            await request
    store = app.services.store
    await app.shutdown()
    store.open()
    try:
        [record] = records_of(store)
    finally:
        store.close()
    assert record["outcome"] == "cancelled" and record["error_code"] == "gateway_shutdown"
    assert record["completed_at"] is not None


def records_of(store) -> list[dict]:
    from signalvault.store import RecordFilter
    from tests.conftest import is_policy_bootstrap

    rows = store.list_records(RecordFilter(), limit=10)
    return [row for row in rows if not is_policy_bootstrap(row)]
