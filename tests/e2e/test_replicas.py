"""Two `signalvault serve` processes on one PostgreSQL schema and one Redis prefix behave as one
gateway: a shared per-key limit, a revocation refused by both at once, one trail that verifies."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from tests.e2e.test_serve import free_port, signalvault, wait_http

pytestmark = pytest.mark.e2e
REDIS_URL = "redis://127.0.0.1:6379/0"
PROVIDER_KEY = "sk-replica-provider-key-71c2"


@pytest.fixture
def redis_prefix():
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = f"Redis at {REDIS_URL} is unreachable ({type(exc).__name__})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    prefix = f"svtest:{uuid.uuid4().hex}:"
    yield prefix
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


class Replicas:
    def __init__(self, tmp: Path, pg_url: str, prefix: str) -> None:
        self.tmp = tmp
        self.mock_port = free_port()
        self.ports = [free_port(), free_port()]
        self.config = tmp / "signalvault.toml"
        self.config.write_text(
            f'[[providers]]\nname = "mock"\nkind = "openai"\n'
            f'base_url = "http://127.0.0.1:{self.mock_port}/v1"\napi_key_env = "REPLICA_KEY"\n'
            'models = ["gpt-*"]\n'
        )
        self.env = {
            **os.environ,
            "SIGNALVAULT_CONFIG": str(self.config),
            "SIGNALVAULT_DATA_DIR": str(tmp / "data"),  # master key file, shared by both
            "SIGNALVAULT_DATABASE_URL": pg_url,
            "SIGNALVAULT_REDIS_URL": REDIS_URL,
            "SIGNALVAULT_LIMITS_REDIS_PREFIX": prefix,
            "SIGNALVAULT_AUDIT_SEAL_INTERVAL_SECONDS": "0.5",
            "REPLICA_KEY": PROVIDER_KEY,
        }
        self.processes: list = []

    def start(self) -> None:
        import subprocess
        import sys

        def spawn(args: list[str], log: str) -> subprocess.Popen:
            process = subprocess.Popen(
                [sys.executable, "-m", "signalvault", *args],
                env=self.env,
                stdout=(self.tmp / log).open("ab"),
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            self.processes.append(process)
            return process

        mock = spawn(["mock-provider", "--port", str(self.mock_port)], "mock.log")
        wait_http(f"http://127.0.0.1:{self.mock_port}/health", mock)
        # The first start migrates the schema; start the second once the first is ready.
        for n, port in enumerate(self.ports):
            gateway = spawn(["serve", "--port", str(port)], f"gateway-{n}.log")
            wait_http(f"http://127.0.0.1:{port}/readyz", gateway)

    def stop(self) -> None:
        import signal
        import subprocess

        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def cli(self, *args: str) -> str:
        result = signalvault(*args, env=self.env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def create_key(self, *options: str) -> tuple[str, str]:
        made = orjson.loads(
            self.cli("keys", "create", "--name", "r", "--env", "dev", "--json", *options)
        )
        return made["id"], made["secret"]

    def chat(self, gateway: int, secret: str) -> httpx.Response:
        return httpx.post(
            f"http://127.0.0.1:{self.ports[gateway]}/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {secret}"},
            timeout=30,
        )


@pytest.fixture
def replicas(tmp_path: Path, pg_url: str, redis_prefix: str):
    stack = Replicas(tmp_path, pg_url, redis_prefix)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def test_two_gateways_share_limits_revocations_and_one_verifiable_trail(replicas: Replicas):
    # A per-key limit holds across both: 10 requests a minute in all, not 10 per gateway.
    _, limited = replicas.create_key("--rpm", "10")
    statuses = [replicas.chat(n % 2, limited).status_code for n in range(24)]
    assert statuses.count(429) >= 12, statuses  # GCRA: 10 at once, +1 per 6 s that passes
    assert 10 <= statuses.count(200) <= 12, statuses
    assert set(statuses) == {200, 429}

    # Revoked through a third process (the CLI) on the shared store: refused by both at once.
    key_id, secret = replicas.create_key()
    assert [replicas.chat(n, secret).status_code for n in (0, 1)] == [200, 200]
    replicas.cli("keys", "revoke", key_id)
    refused = [replicas.chat(n, secret) for n in (0, 1)]
    assert [r.status_code for r in refused] == [401, 401]
    assert {r.json()["error"]["code"] for r in refused} == {"revoked_api_key"}

    # Both wrote into one trail: every request is recorded once, and the trail verifies after
    # the gateways sealed it on shutdown.
    replicas.stop()
    logged = replicas.cli("logs", "--json", "--limit", "1000")
    records = [orjson.loads(line) for line in logged.splitlines()]
    interactions = [r for r in records if r["kind"] == "interaction"]
    assert len(interactions) == len(statuses) + 4
    # The first policy's activation is recorded once, though both gateways started on the
    # empty store.
    assert [r["kind"] for r in records].count("policy_activated") == 1
    assert len({r["id"] for r in records}) == len(records)
    key_changes = [r for r in records if r["kind"] == "gateway_key"]
    assert len(key_changes) == 3  # the CLI's 2 creates and 1 revoke
    verified = signalvault("audit", "verify", env=replicas.env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
