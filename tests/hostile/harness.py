"""The fuzz harness: a real gateway (uvicorn + GuardedHttpTools on a loopback port, its own mock
provider), one request sender, and the property every entry point must hold for every request:

- no 5xx for anything a client sends;
- the gateway stays healthy: `/healthz` answers and a good request still succeeds;
- no traceback and no "unexpected error" in the gateway's log;
- an answer carrying `X-SignalVault-Request-Id` has that audit record, whose status is the
  answer's and whose outcome agrees with it (`ok` for 2xx, never `ok` or `unknown` otherwise);
- at the end, every request the provider received belongs to a recorded attempt.

To fuzz another entry point, give `fuzz` a strategy of `HttpRequest`s (see `mutations.py`), e.g.
`fuzz(gateway, "mcp", json_requests("/mcp/files", jsonrpc_bodies, gateway.key, api="chat"))`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import httptools
import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signalvault.app import GatewayApp, create_app
from signalvault.config import ServerSettings, Settings
from signalvault.mock_provider import MockProvider
from signalvault.server import BackgroundServer, http_protocol
from tests.conftest import make_settings

# `hostile` runs in `make test`: the same examples every run (a CI failure reproduces locally),
# a bounded budget. `fuzz` (FUZZ_PROFILE=fuzz, `make fuzz`): many more, a new seed each run.
PROFILE = os.environ.get("FUZZ_PROFILE", "hostile")
settings.register_profile(
    "hostile",
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz",
    max_examples=2500,
    derandomize=False,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SUCCESS = "ok"
NEVER_FOR_ERRORS = frozenset({"ok", "unknown"})
GOOD_CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "still there?"}]}


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request as sent on the wire; `chunks` > 1 sends the body chunked in that many parts."""

    method: str
    path: str
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes = b""
    chunks: int = 1
    label: str = ""  # the mutations applied, for failure messages and statistics
    raw: bytes | None = None  # sent as these bytes on a socket of its own instead
    half_close: bool = False  # after `raw`, tell the server nothing more will come

    def __repr__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        if self.raw is not None:
            return f"raw [{self.label}] {self.raw[:300]!r} ({len(self.raw)} bytes)"
        names = sorted({name.decode("latin-1") for name, _ in self.headers})
        return (
            f"{self.method} {self.path} [{self.label}] headers={names} "
            f"body[:160]={self.body[:160]!r} ({len(self.body)} bytes, {self.chunks} chunk(s))"
        )


class LogWatch(logging.Handler):
    """Collects warnings and errors from every logger while the gateway runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def problems(self) -> list[str]:
        """Tracebacks, unexpected errors and ASGI errors logged so far."""
        found = []
        for record in self.records:
            message = record.getMessage()
            if (
                record.exc_info
                or record.exc_text
                or "Traceback" in message
                or "unexpected error" in message
                or "Exception in ASGI application" in message
            ):
                found.append(f"{record.name}: {message}")
        return found


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class _Responses:
    """httptools callbacks collecting every complete response read from a socket."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self._headers: dict[str, str] = {}
        self._body = b""
        self.parser = httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        self._headers, self._body = {}, b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        self.answers.append(Answer(status, self._headers, self._body))


@dataclass
class GatewayUnderFuzz:
    """A running gateway and what the property needs to judge its answers."""

    app: GatewayApp
    mock: MockProvider
    key: str
    base_url: str
    client: httpx.Client
    logs: LogWatch
    sent: Counter[str] = field(default_factory=Counter)  # examples per entry point

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def send(self, request: HttpRequest) -> list[Answer]:
        """The answers to `request` (several when raw bytes hold several requests)."""
        if request.raw is not None:
            responses = _Responses()
            with contextlib.suppress(httptools.HttpParserError):  # a cut last answer
                responses.parser.feed_data(
                    raw_exchange(self.port, request.raw, half_close=request.half_close)
                )
            return responses.answers
        content: Any = request.body
        if request.chunks > 1 and request.body:
            size = max(1, len(request.body) // request.chunks)
            parts = [request.body[i : i + size] for i in range(0, len(request.body), size)]
            content = iter(parts)  # an iterator: httpx sends Transfer-Encoding: chunked
        response = self.client.request(
            request.method, request.path, content=content, headers=list(request.headers)
        )
        return [Answer(response.status_code, dict(response.headers), response.content)]

    def record(self, record_id: str, timeout: float = 5.0) -> dict[str, Any] | None:
        """The audit record, once its outcome is known (completions are queued after the
        answer's last byte went out, so the caller may be a little ahead of them)."""
        assert self.app.services is not None
        store = self.app.services.store
        deadline = time.monotonic() + timeout
        while True:
            store.flush()
            row = store.get_record(record_id)
            if (row is not None and row["outcome"] != "unknown") or time.monotonic() > deadline:
                return row
            time.sleep(0.005)

    def good_request_succeeds(self) -> bool:
        response = self.client.post(
            "/v1/chat/completions", json=GOOD_CHAT, headers={"authorization": f"Bearer {self.key}"}
        )
        return response.status_code == 200 and response.json()["object"] == "chat.completion"

    def check(self, request: HttpRequest, answers: list[Answer]) -> None:
        """The property, for one request and its answers."""
        where = request.describe()
        for answer in answers:
            status = answer.status
            assert status < 500, f"{status} {answer.body[:300]!r} <- {where}"
            record_id = answer.headers.get("x-signalvault-request-id")
            if record_id is not None:
                row = self.record(record_id)
                assert row is not None, f"no audit record {record_id} <- {where}"
                assert row["status_code"] == status, f"{row} <- {where}"
                if status < 400:
                    assert row["outcome"] == SUCCESS, f"{row} <- {where}"
                else:
                    assert row["outcome"] not in NEVER_FOR_ERRORS, f"{row} <- {where}"
        assert self.client.get("/healthz").status_code == 200, where
        self.wait_idle()  # work that outlives the answer (a caller that left) logs by now
        problems = self.logs.problems()
        self.logs.records.clear()  # each example is judged by what it caused
        assert not problems, f"{problems} <- {where}"

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Until no /v1 request is in flight in the gateway."""
        deadline = time.monotonic() + timeout
        while self.app._active and time.monotonic() < deadline:
            time.sleep(0.002)

    def check_forwards_recorded(self) -> None:
        """Every request the provider received is an attempt noted on some audit record."""
        assert self.app.services is not None
        self.wait_idle()
        self.app.services.store.flush()
        rows = self.app.services.store.list_records(_all(), limit=1_000_000)
        attempts = sum(
            sum(1 for note in orjson.loads(row["attempts"]) if "status" in note or "error" in note)
            for row in rows
            if row["attempts"]
        )
        unknown = [row["id"] for row in rows if row["outcome"] == "unknown"]
        forwards = self.mock.stats()["total"]
        assert forwards == attempts, f"{forwards} forwards, {attempts} noted; unknown: {unknown}"


def _all() -> Any:
    from signalvault.store import RecordFilter

    return RecordFilter()


def fuzz_settings(tmp_path, provider_url: str) -> Settings:
    """A small body limit, so very long strings also meet the 413 path; a short body deadline,
    so a body that never ends (a length or a chunk announced longer than sent) meets the 408
    path in two seconds instead of holding the test for the default 30."""
    base = make_settings(tmp_path, provider_url)
    server = ServerSettings(max_body_bytes=512 * 1024, body_timeout_seconds=2.0)
    return replace(base, server=server)


@contextlib.contextmanager
def gateway_under_fuzz(
    tmp_path, configure: Callable[[Settings], Settings] = lambda s: s
) -> Iterator[GatewayUnderFuzz]:
    """A mock provider and a gateway (`configure` may change its settings), both on loopback
    ports under uvicorn, the gateway behind `GuardedHttpTools` as `serve` runs it."""
    watch = LogWatch()
    root = logging.getLogger()
    root.addHandler(watch)
    mock = MockProvider()
    mock_server = BackgroundServer(mock).start()
    settings = configure(fuzz_settings(tmp_path, f"http://127.0.0.1:{mock_server.port}/v1"))
    app = create_app(settings)
    server = BackgroundServer(app, http=http_protocol(settings.server)).start()
    try:
        assert app.services is not None
        _, key = app.services.keyring.create(name="fuzz", environment="dev")
        base_url = f"http://127.0.0.1:{server.port}"
        with httpx.Client(base_url=base_url, timeout=30) as client:
            yield GatewayUnderFuzz(app, mock, key, base_url, client, watch)
    finally:
        server.stop()
        mock_server.stop()
        root.removeHandler(watch)


def fuzz(
    gateway: GatewayUnderFuzz,
    name: str,
    requests: st.SearchStrategy[HttpRequest],
    *,
    weight: float = 1.0,
    check: Callable[[HttpRequest, list[Answer]], None] | None = None,
) -> int:
    """Send generated requests to the gateway and hold each answer to the property (or to
    `check`, which adds to it); returns how many were sent. `weight` scales the profile's
    `max_examples`."""
    profile = settings.get_profile(PROFILE)
    judge = check if check is not None else gateway.check

    @settings(profile, max_examples=max(1, int(profile.max_examples * weight)))
    @given(requests)
    def one(request: HttpRequest) -> None:
        gateway.sent[name] += 1
        judge(request, gateway.send(request))

    one()
    assert gateway.good_request_succeeds()
    return gateway.sent[name]


def raw_exchange(
    port: int, data: bytes, *, half_close: bool = False, timeout: float = 30.0
) -> bytes:
    """Send raw bytes on a fresh connection and read until the server closes it (for what no
    HTTP client sends: huge heads, lying lengths, broken chunking, several requests at once).
    `half_close` says no more will come (uvicorn then drops the connection, answer and all)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server may close before it read everything
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        received = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                received += chunk
        return received
