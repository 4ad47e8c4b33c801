"""Running under the server: what `serve` does to the process beyond the app itself."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from signalvault.config import ServerSettings
from signalvault.server import GC_THRESHOLDS, BackgroundServer, http_protocol, served_app
from signalvault.server.protocol import SHUTDOWN_GRACE, GatheredWrites
from tests.conftest import make_settings


@pytest.mark.anyio
async def test_the_served_app_settles_its_heap_once_started(tmp_path):
    """Everything loaded at startup is frozen out of the collector's walks, so a full collection
    while serving does not hold requests for the whole heap."""
    thresholds = gc.get_threshold()
    app = served_app(make_settings(tmp_path, "http://127.0.0.1:9/v1"))
    try:
        await app.startup()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        await app.shutdown()
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_malloc_is_tuned_unless_the_operator_set_it(monkeypatch):
    """Both thresholds are fixed, except one the operator's MALLOC_*_ variable sets."""
    import signalvault.server as server

    calls: list[tuple[int, int]] = []

    class Libc:
        def mallopt(self, option: int, value: int) -> int:
            calls.append((option, value))
            return 1

    monkeypatch.setattr(server.ctypes, "CDLL", lambda name: Libc())
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    server.tune_malloc()
    assert sorted(calls) == [(-3, 128 * 1024), (-1, 16 * 1024 * 1024)]
    calls.clear()
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1048576")
    server.tune_malloc()
    assert calls == [(-3, 128 * 1024)]


async def _hello(scope: dict[str, Any], receive: object, send: Any) -> None:
    if scope["type"] == "http":
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_a_stopping_server_answers_one_more_request_per_connection_then_closes():
    """Once the listener is closed, a connection accepted just before (no request yet) and a
    kept-alive one between requests each get the request their client was sending answered,
    with `Connection: close`, where uvicorn alone closed both unanswered; a connection that
    sends nothing is closed after SHUTDOWN_GRACE."""
    protocol = http_protocol(ServerSettings(header_timeout_seconds=5))
    server = BackgroundServer(_hello, http=protocol).start()
    request = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as fresh,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as kept,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as silent,
    ):
        kept.sendall(request)
        first = kept.recv(65536)
        assert first.endswith(b"ok") and b"connection: close" not in first.lower()
        time.sleep(0.3)  # all three accepted
        stopping = threading.Thread(target=server.stop)
        stopping.start()
        deadline = time.monotonic() + 5
        while not _refused(server.port):  # the listener is closed: shutdown has begun
            assert time.monotonic() < deadline
            time.sleep(0.02)
        for connection in (fresh, kept):
            connection.sendall(request)
            answer = _read_all(connection)  # then the server closes it
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")
            assert b"connection: close" in answer.lower()
        started = time.monotonic()
        assert _read_all(silent) == b""  # sent nothing: closed after the grace
        stopping.join(timeout=10)
        assert not stopping.is_alive() and time.monotonic() - started < SHUTDOWN_GRACE + 2


class _RecordingTransport(asyncio.Transport):
    """A socket's transport that keeps what each write sent."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 9) if name in ("sockname", "peername") else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _stream(scope: dict[str, Any], receive: object, send: Any) -> None:
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await asyncio.sleep(0.01)  # the provider's first event is on its way
    await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _served(
    app: Any, request: bytes, transport: _RecordingTransport | None = None
) -> _RecordingTransport:
    """`request` through the gateway's protocol on a recording transport, answered to its end."""
    config = uvicorn.Config(
        app, http=http_protocol(ServerSettings()), lifespan="off", access_log=False, log_config=None
    )
    config.load()
    transport = transport or _RecordingTransport()
    protocol: Any = config.http_protocol_class(config, ServerState(), {})  # type: ignore[call-arg]
    protocol.connection_made(transport)
    protocol.data_received(request)
    for _ in range(100):
        if protocol.cycle is not None and protocol.cycle.response_complete:
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0)  # a held head's flush, if any, runs now
    protocol.connection_lost(None)
    return transport


@pytest.mark.anyio
async def test_a_json_answer_leaves_in_one_send_and_a_stream_step_by_step():
    """A response of known length leaves with its head in one send (uvicorn alone made two: one
    system call and one client read more per answer); a stream's head is not held back while
    its first event is awaited, and its last event and its end leave together."""
    request = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
    answer = await _served(_hello, request)
    assert len(answer.writes) == 1
    assert answer.writes[0].startswith(b"HTTP/1.1 200") and answer.writes[0].endswith(b"\r\n\r\nok")

    stream = await _served(_stream, request)
    assert len(stream.writes) == 2
    assert stream.writes[0].startswith(b"HTTP/1.1 200") and stream.writes[0].endswith(b"\r\n\r\n")
    assert stream.writes[1] == b"9\r\ndata: 1\n\n\r\n0\r\n\r\n"


@pytest.mark.anyio
async def test_an_answer_is_sent_before_the_handler_goes_on():
    """The last piece of an answer (of known length or chunked) leaves at once, not when the
    handler's step ends: the record it writes next does not delay the caller."""
    transport = _RecordingTransport()
    seen: list[list[bytes]] = []

    async def chunked(scope: dict[str, Any], receive: object, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})
        seen.append(list(transport.writes))  # the handler's work after answering runs here

    await _served(chunked, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", transport)
    assert len(seen[0]) == 1 and seen[0][0].endswith(b"\r\n\r\n1\r\nx\r\n0\r\n\r\n")


@pytest.mark.anyio
async def test_what_is_held_is_sent_before_the_connection_closes():
    """Writes still held when the connection closes (an error answer, `Connection: close`) are
    sent first; once it is closing, held writes are dropped and new ones go to the socket's
    transport at once, whose error tells the gateway the caller left (the record says so)."""
    transport = _RecordingTransport()
    protocol = type("Protocol", (), {"cycle": None})()
    held = GatheredWrites(transport, asyncio.get_running_loop(), protocol)  # type: ignore[arg-type]
    held.write(b"HTTP/1.1 500 head\r\n\r\n")
    held.write(b"body")
    assert transport.writes == []
    held.close()
    assert transport.writes == [b"HTTP/1.1 500 head\r\n\r\nbody"] and transport.closed

    closing = _RecordingTransport()
    late = GatheredWrites(closing, asyncio.get_running_loop(), protocol)  # type: ignore[arg-type]
    late.write(b"head")
    closing.closed = True
    late.write(b"more")  # straight to the socket's transport, which raises: the caller left
    await asyncio.sleep(0)
    assert closing.writes == [b"more"]
