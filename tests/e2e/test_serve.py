"""Real sockets, real processes: `signalvault serve` and `signalvault mock-provider` on loopback
ports, driven by the official SDKs. Checks responses, the trail, and the bytes on disk."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import orjson
import pytest

from signalvault import BUILD

pytestmark = pytest.mark.e2e
PROVIDER_KEY = "sk-e2e-provider-key-5e1d9b7c"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def signalvault(*args: str, env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "signalvault", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **kwargs,
    )


class Stack:
    """Two mock providers (fast, and slow streaming) and one gateway, as separate processes."""

    def __init__(self, tmp: Path, workers: int = 1) -> None:
        self.tmp = tmp
        self.workers = workers
        self.data_dir = tmp / "data"
        self.env = {
            **os.environ,
            "SIGNALVAULT_DATA_DIR": str(self.data_dir),
            "E2E_PROVIDER_KEY": PROVIDER_KEY,
        }
        self.mock_port, self.slow_port, self.port = free_port(), free_port(), free_port()
        self.config = tmp / "signalvault.toml"
        self.config.write_text(
            f'[[providers]]\nname = "mock"\nkind = "openai"\n'
            f'base_url = "http://127.0.0.1:{self.mock_port}/v1"\napi_key_env = "E2E_PROVIDER_KEY"\n'
            'models = ["gpt-*", "text-embedding-*"]\n\n'
            f'[[providers]]\nname = "mock-anthropic"\nkind = "anthropic"\n'
            f'base_url = "http://127.0.0.1:{self.mock_port}/v1"\napi_key_env = "E2E_PROVIDER_KEY"\n'
            'models = ["claude-*"]\n\n'
            f'[[providers]]\nname = "slow"\nkind = "openai"\n'
            f'base_url = "http://127.0.0.1:{self.slow_port}/v1"\napi_key_env = "E2E_PROVIDER_KEY"\n'
            'models = ["slow-*"]\n\n'
            # Input secrets are blocked for project "default" only, so a key of project "lab" can
            # make the mock reply with a secret and show the output rule catching it in a stream.
            '[[guardrails.rules]]\nname = "secrets-in"\ndetector = "secrets"\naction = "block"\n'
            'direction = "input"\nscope = "project:default"\n\n'
            '[[guardrails.rules]]\nname = "secrets-out"\ndetector = "secrets"\naction = "block"\n'
            'direction = "output"\n\n'
            '[[guardrails.rules]]\nname = "pii-in"\ndetector = "pii"\naction = "redact"\n'
            'direction = "input"\n'
        )
        self.processes: list[subprocess.Popen] = []
        self.gateway_log = tmp / "gateway.log"

    def start(self) -> None:
        for port, extra in (
            (self.mock_port, []),
            (self.slow_port, ["--chunks", "50", "--chunk-delay-ms", "100"]),
        ):
            process = self._spawn(
                ["mock-provider", "--port", str(port), *extra], self.tmp / f"mock-{port}.log"
            )
            wait_http(f"http://127.0.0.1:{port}/health", process)
        made = signalvault(
            "keys",
            "create",
            "--name",
            "e2e",
            "--env",
            "dev",
            "--json",
            "--config",
            str(self.config),
            env=self.env,
        )
        assert made.returncode == 0, made.stderr
        self.key = orjson.loads(made.stdout)["secret"]
        lab = signalvault(
            "keys",
            "create",
            "--name",
            "lab",
            "--env",
            "dev",
            "--project",
            "lab",
            "--json",
            "--config",
            str(self.config),
            env=self.env,
        )
        self.lab_key = orjson.loads(lab.stdout)["secret"]
        self.start_gateway()

    def start_gateway(self) -> None:
        self.gateway = self._spawn(
            [
                *("serve", "--config", str(self.config), "--port", str(self.port)),
                *("--workers", str(self.workers)),
            ],
            self.gateway_log,
        )
        wait_http(f"http://127.0.0.1:{self.port}/readyz", self.gateway)

    def _spawn(self, args: list[str], log: Path) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "signalvault", *args],
            env=self.env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    def mock_stats(self) -> dict:
        return httpx.get(f"http://127.0.0.1:{self.mock_port}/stats").json()

    def logs(self, *args: str) -> list[dict]:
        result = signalvault(
            "logs", "--json", "--limit", "1000", *args, "--config", str(self.config), env=self.env
        )
        assert result.returncode == 0, result.stderr
        found = [orjson.loads(line) for line in result.stdout.splitlines()]
        return [r for r in found if r["kind"] == "interaction"]  # not the key-change events

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def stack(tmp_path: Path):
    stack = Stack(tmp_path)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def test_official_sdks_through_the_gateway_leave_only_ciphertext_on_disk(stack: Stack):
    canaries = [f"CANARY-{uuid.uuid4().hex}" for _ in range(6)]
    base = f"http://127.0.0.1:{stack.port}"
    oai = openai.OpenAI(base_url=base + "/v1", api_key=stack.key, max_retries=0)
    ant = anthropic.Anthropic(base_url=base, api_key=stack.key, max_retries=0)

    chat = oai.chat.completions.create(
        model="gpt-4o-mini", user="e2e-user", messages=[{"role": "user", "content": canaries[0]}]
    )
    assert chat.choices[0].message.content == f"You said: {canaries[0]}"
    pieces = [
        chunk.choices[0].delta.content or ""
        for chunk in oai.chat.completions.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": canaries[1]}]
        )
        if chunk.choices
    ]
    assert "".join(pieces) == f"You said: {canaries[1]}"
    embedding = oai.embeddings.create(model="text-embedding-3-small", input=canaries[2])
    assert len(embedding.data[0].embedding) > 0
    message = ant.messages.create(
        model="claude-sonnet-5-5",
        max_tokens=50,
        messages=[{"role": "user", "content": canaries[3]}],
    )
    assert message.content[0].text == f"You said: {canaries[3]}"
    with ant.messages.stream(
        model="claude-sonnet-5-5",
        max_tokens=50,
        messages=[{"role": "user", "content": canaries[4]}],
    ) as stream:
        assert "".join(stream.text_stream) == f"You said: {canaries[4]}"
    raw = oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": canaries[5]}]
    )
    request_id = raw.headers["x-signalvault-request-id"]

    assert stack.mock_stats()["total"] == 6
    secrets = [c.encode() for c in canaries] + [stack.key.encode(), PROVIDER_KEY.encode()]
    live_files = [p for p in stack.data_dir.rglob("*") if p.is_file()]
    assert any(p.name.endswith("-wal") for p in live_files)  # checked while the WAL is live
    for path in live_files:
        data = path.read_bytes()
        assert not any(secret in data for secret in secrets), path.name
    stack.stop()  # flushes and closes the store, so every byte is on disk

    found = stack.logs()
    assert len(found) == 6
    assert {r["outcome"] for r in found} == {"ok"}
    assert {r["api"] for r in found} == {"chat", "embeddings", "messages"}
    assert sum(r["stream"] for r in found) == 2
    assert request_id in {r["id"] for r in found}
    assert stack.logs("--user", "e2e-user")[0]["model_requested"] == "gpt-4o-mini"

    files = [p for p in stack.data_dir.rglob("*") if p.is_file()]
    assert any(p.name == "signalvault.db" for p in files)
    for path in [*files, stack.gateway_log]:
        data = path.read_bytes()
        for secret in secrets:
            assert secret not in data, f"{secret[:12]!r}... found in {path.name}"
    assert (stack.data_dir.stat().st_mode & 0o777) == 0o700
    assert ((stack.data_dir / "master.key").stat().st_mode & 0o777) == 0o600


def test_the_log_says_which_code_serves(stack: Stack):
    """The compiled modules or their sources (signalvault/compiled.py): the served process
    decides as this one did, from the same checkout and environment."""
    line = orjson.dumps({"message": "serving", "build": BUILD})[1:-1]
    assert line in stack.gateway_log.read_bytes()


@contextlib.contextmanager
def slow_stream(stack: Stack) -> Iterator[httpx.Response]:
    """A streamed chat completion from the slow mock: 50 chunks, 100 ms apart."""
    url = f"http://127.0.0.1:{stack.port}/v1/chat/completions"
    body = {"model": "slow-model", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    headers = {"Authorization": f"Bearer {stack.key}"}
    with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as response:
        yield response


def test_sighup_to_a_single_worker_is_logged_not_fatal(stack: Stack):
    """Its default action would kill the process and cut whatever is in flight."""
    with slow_stream(stack) as r:
        chunks = r.iter_bytes()
        next(chunks)
        stack.gateway.send_signal(signal.SIGHUP)
        assert b"".join(chunks).endswith(b"data: [DONE]\n\n")
    assert stack.gateway.poll() is None
    assert "SIGHUP ignored: one worker has no replacement" in stack.gateway_log.read_text()
    assert httpx.get(f"http://127.0.0.1:{stack.port}/healthz", timeout=10).status_code == 200


def test_client_disconnect_mid_stream_is_recorded_as_cancelled(stack: Stack):
    with slow_stream(stack) as r:
        assert r.status_code == 200
        next(r.iter_bytes())  # first chunk arrived, then the client goes away
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        outcome = stack.logs()[0]["outcome"]
        if outcome != "unknown":
            break
        time.sleep(0.1)
    assert outcome == "cancelled"


def test_gateway_killed_mid_request_leaves_a_record_marked_unknown(stack: Stack):
    url = f"http://127.0.0.1:{stack.port}/v1/chat/completions"
    body = {"model": "slow-model", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    first_chunk = threading.Event()

    def client() -> None:
        try:
            with httpx.stream(
                "POST", url, json=body, headers={"Authorization": f"Bearer {stack.key}"}
            ) as r:
                for _ in r.iter_bytes():
                    first_chunk.set()
        except httpx.HTTPError:
            pass

    thread = threading.Thread(target=client)
    thread.start()
    assert first_chunk.wait(10)
    stack.gateway.send_signal(signal.SIGKILL)
    stack.gateway.wait()
    thread.join(10)
    [record] = stack.logs()
    assert record["outcome"] == "unknown" and record["completed_at"] is None
    # A restarted gateway serves again on the same store.
    stack.start_gateway()
    response = httpx.post(
        url,
        json={**body, "model": "gpt-4o-mini", "stream": False},
        headers={"Authorization": f"Bearer {stack.key}"},
    )
    assert response.status_code == 200


def test_gateway_killed_under_load_keeps_a_record_of_every_answered_request(stack: Stack):
    url = f"http://127.0.0.1:{stack.port}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {stack.key}"}
    answered: list[str] = []  # request ids of 2xx answers
    enough, lock = threading.Event(), threading.Lock()

    def client(n: int) -> None:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"load {n}"}]}
        with httpx.Client(timeout=10) as http:
            while True:
                try:
                    response = http.post(url, json=body, headers=headers)
                except httpx.HTTPError:
                    return  # the gateway is gone
                if response.status_code == 200:
                    with lock:
                        answered.append(response.headers["x-signalvault-request-id"])
                        if len(answered) >= 150:
                            enough.set()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    assert enough.wait(60)
    stack.gateway.send_signal(signal.SIGKILL)
    stack.gateway.wait()
    for thread in threads:
        thread.join(15)
    stack.start_gateway()
    outcomes = {record["id"]: record["outcome"] for record in stack.logs("--limit", "100000")}
    # Every answer the clients got is in the trail: write-ahead commits before forwarding. Its
    # outcome is `ok` unless the process died between answering and committing the outcome,
    # which leaves the record marked `unknown` (interrupted), never missing.
    assert set(answered) <= set(outcomes)
    assert {outcomes[i] for i in answered} <= {"ok", "unknown"}
    assert sum(outcomes[i] == "ok" for i in answered) >= len(answered) // 2
    # Requests cut by the kill were forwarded and recorded, and stay marked as interrupted.
    assert set(outcomes.values()) <= {"ok", "unknown"}


def test_guardrails_through_the_official_sdks(stack: Stack):
    base = f"http://127.0.0.1:{stack.port}"
    oai = openai.OpenAI(base_url=base + "/v1", api_key=stack.key, max_retries=0)
    aws_key = "AKIA" + "Q3VZ7TXK2MBN4PLD"
    with pytest.raises(openai.BadRequestError) as blocked:
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"deploy {aws_key}"}]
        )
    assert blocked.value.code == "guardrail_violation" and aws_key not in str(blocked.value)
    assert stack.mock_stats()["total"] == 0

    email = "jane.doe@example.com"
    answer = oai.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"mail {email}"}]
    )
    assert answer.choices[0].message.content == "You said: mail [EMAIL_1]"
    seen = httpx.get(f"http://127.0.0.1:{stack.mock_port}/requests?limit=1").json()["data"]
    assert email not in orjson.dumps(seen).decode()

    lab = openai.OpenAI(base_url=base + "/v1", api_key=stack.lab_key, max_retries=0)
    received = []
    with pytest.raises(openai.APIError) as cut:
        for chunk in lab.chat.completions.create(
            model="gpt-4o-mini",
            stream=True,
            messages=[{"role": "user", "content": f"[[mock:reply=the key is {aws_key} ok]]"}],
        ):
            received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    assert cut.value.code == "guardrail_violation"
    assert "AKIA" not in "".join(received)
    assert stack.mock_stats()["total"] == 2

    stack.stop()
    outcomes = sorted(r["outcome"] for r in stack.logs())
    assert outcomes == ["blocked", "blocked", "ok"]
    for path in [p for p in stack.data_dir.rglob("*") if p.is_file()]:
        assert aws_key.encode() not in path.read_bytes()
        assert email.encode() not in path.read_bytes()


# `serve --workers 2`: each worker accepts on its own SO_REUSEPORT socket (server.Supervisor)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT, /proc")
CONNECTIONS = 64
# Each worker must hold at least this many of the CONNECTIONS. A fair hash puts Binomial(64, 1/2)
# connections on a worker: one gets 17 or fewer with probability 2.3e-4 (sum of C(64, i) for
# i <= 17, times 2, over 2**64). uvicorn's one shared socket split 32 idle connections 32/0,
# 32/0, 26/6, 26/6 and 22/10 (five runs), under load 13/3 of 16.
FAIR_SHARE = 18


@pytest.fixture
def workers_stack(tmp_path: Path):
    stack = Stack(tmp_path, workers=2)
    try:
        stack.start()
        wait_log(stack, "Application startup complete.", 2)
        yield stack
    finally:
        stack.stop()


def wait_log(stack: Stack, line: str, count: int, timeout: float = 60.0) -> None:
    """Until the gateway's log holds `line` `count` times (workers log their own startup)."""
    deadline = time.monotonic() + timeout
    while stack.gateway_log.read_text().count(line) < count:
        assert time.monotonic() < deadline, f"{line!r} not {count} times in the log"
        assert stack.gateway.poll() is None, stack.gateway_log.read_text()[-2000:]
        time.sleep(0.1)


def tcp_sockets(port: int, state: str) -> set[int]:
    """Inodes of the IPv4 TCP sockets with local port `port` in `state` (01 established, 0A
    listening), from /proc/net/tcp."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
            inodes.add(int(fields[9]))
    return inodes


def socket_owners(root: int, inodes: set[int]) -> Counter[int]:
    """How many of `inodes` each process under `root` (the `serve` supervisor) holds open."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            continue  # the process is gone
        children.setdefault(ppid, []).append(int(stat.parent.name))
    owners: Counter[int] = Counter()
    pending = [root]
    while pending:
        pid = pending.pop()
        pending += children.get(pid, [])
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                owners[pid] += 1
    return owners


def worker_pids(stack: Stack) -> set[int]:
    """The processes listening on the gateway's port but the supervisor, which keeps a copy of
    each worker's socket for its replacement: the workers."""
    return set(socket_owners(stack.gateway.pid, tcp_sockets(stack.port, "0A"))) - {
        stack.gateway.pid
    }


def connections_per_worker(stack: Stack) -> Counter[int]:
    """Open CONNECTIONS keep-alive connections at once, one request on each, and count which
    process holds the server side of each while they are still open."""
    connections = [
        http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30) for _ in range(CONNECTIONS)
    ]
    try:
        for connection in connections:  # every handshake before any request, like a load test
            connection.connect()
        for connection in connections:
            connection.request("GET", "/healthz")
        for connection in connections:
            response = connection.getresponse()
            response.read()
            assert response.status == 200 and not response.will_close
        return socket_owners(stack.gateway.pid, tcp_sockets(stack.port, "01"))
    finally:
        for connection in connections:
            connection.close()


@linux_only
def test_two_workers_each_serve_a_fair_share_of_keep_alive_connections(workers_stack: Stack):
    workers = worker_pids(workers_stack)
    assert len(workers) == 2 and workers_stack.gateway.pid not in workers
    split = connections_per_worker(workers_stack)
    assert sum(split.values()) == CONNECTIONS and set(split) == workers
    assert min(split.values()) >= FAIR_SHARE, split


@linux_only
def test_every_worker_runs_the_guarded_protocol(workers_stack: Stack):
    # 16 connections reach both workers but with probability 2**-15; plain httptools would let a
    # 40 KB head through, GuardedHttpTools (the [server] limit, 32 KiB by default) answers 431.
    for _ in range(16):
        with socket.create_connection(("127.0.0.1", workers_stack.port), timeout=10) as client:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 40_000)
            assert client.recv(100).startswith(b"HTTP/1.1 431 ")


@linux_only
def test_sigterm_lets_a_stream_finish_on_every_worker_then_exits_0(workers_stack: Stack):
    workers = worker_pids(workers_stack)
    with slow_stream(workers_stack) as response:
        chunks = response.iter_bytes()
        next(chunks)
        workers_stack.gateway.send_signal(signal.SIGTERM)
        rest = b"".join(chunks)
    assert rest.endswith(b"data: [DONE]\n\n")  # 50 chunks, 100 ms apart: within the grace
    assert workers_stack.gateway.wait(timeout=30) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert [r["outcome"] for r in workers_stack.logs()] == ["ok"]


@linux_only
def test_a_second_serve_on_the_same_port_fails_clearly(workers_stack: Stack):
    # Its workers' SO_REUSEPORT sockets could join the first gateway's: the probe refuses.
    second = signalvault(
        "serve", "--config", str(workers_stack.config), "--port", str(workers_stack.port),
        "--workers", "2", env=workers_stack.env,
    )  # fmt: skip
    assert second.returncode == 1
    assert f"cannot listen on 127.0.0.1:{workers_stack.port}: Address already in use" in (
        second.stderr
    )
    assert sum(connections_per_worker(workers_stack).values()) == CONNECTIONS  # all still ours


@linux_only
def test_a_killed_worker_is_replaced_and_gets_its_share_again(workers_stack: Stack):
    killed, kept = sorted(worker_pids(workers_stack))
    os.kill(killed, signal.SIGKILL)
    wait_log(workers_stack, f"worker process {killed} exited with code -9; starting another", 1)
    wait_log(workers_stack, "Application startup complete.", 3)
    workers = worker_pids(workers_stack)
    assert len(workers) == 2 and kept in workers and killed not in workers
    split = connections_per_worker(workers_stack)
    assert set(split) == workers and min(split.values()) >= FAIR_SHARE, split
    workers_stack.gateway.send_signal(signal.SIGTERM)
    assert workers_stack.gateway.wait(timeout=30) == 0


@linux_only
def test_sighup_replaces_every_worker_while_the_port_keeps_answering(workers_stack: Stack):
    old, sockets = worker_pids(workers_stack), tcp_sockets(workers_stack.port, "0A")
    outcomes: Counter[str] = Counter()
    stop = threading.Event()

    def knock(keep_alive: bool) -> None:
        # New connections may land on a worker as it leaves; kept-alive ones be reused as it does.
        limits = httpx.Limits(max_keepalive_connections=1 if keep_alive else 0)
        with httpx.Client(limits=limits, timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.get(f"http://127.0.0.1:{workers_stack.port}/healthz")
                    outcomes[str(response.status_code)] += 1
                except httpx.HTTPError as exc:
                    outcomes[type(exc).__name__] += 1

    knockers = [threading.Thread(target=knock, args=(n % 2 == 0,)) for n in range(4)]
    for knocker in knockers:
        knocker.start()
    try:
        time.sleep(0.5)  # answering before the reload
        workers_stack.gateway.send_signal(signal.SIGHUP)
        wait_log(workers_stack, '"message":"Finished server process', 2)  # not its color_message
        time.sleep(0.5)  # and after it
    finally:
        stop.set()
        for knocker in knockers:
            knocker.join()
    # Every request answered: none reset or dropped by a worker stopping.
    assert set(outcomes) == {"200"} and outcomes["200"] > 50, outcomes
    new = worker_pids(workers_stack)
    assert len(new) == 2 and not new & old
    assert all(not Path(f"/proc/{pid}").exists() for pid in old)
    # The replacements accept on their predecessors' sockets: none closed, none added.
    assert tcp_sockets(workers_stack.port, "0A") == sockets
    workers_stack.gateway.send_signal(signal.SIGTERM)
    assert workers_stack.gateway.wait(timeout=30) == 0
