"""WireFaultServer: well-formed HTTP/1.1 for ordinary answers, a lying Content-Length and a TCP
reset where the markers ask, and every request body kept as it arrived."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import orjson
import pytest

from signalvault.mock_provider import MockProvider
from signalvault.mock_provider.wire_faults import LIE, WireFaultServer
from tests.mock_provider.test_mock_provider import CHAT, OPENAI_AUTH


@pytest.fixture(scope="module")
def wire() -> Iterator[WireFaultServer]:
    server = WireFaultServer(MockProvider()).start()
    yield server
    server.stop()


def post(port: int, payload: dict) -> tuple[bytes, bytes]:
    """(head, everything after it) of one raw exchange, read until the server closes."""
    body = orjson.dumps(payload)
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer k\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    )
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            received += b"<RST>"
    head, _, rest = received.partition(b"\r\n\r\n")
    return head, rest


def test_ordinary_answers_are_well_formed_and_bodies_are_kept(wire):
    with httpx.Client(base_url=f"http://127.0.0.1:{wire.port}") as client:
        answer = client.post("/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH)
        stream = client.post(
            "/v1/chat/completions", json={**CHAT, "stream": True}, headers=OPENAI_AUTH
        )
    assert answer.json()["object"] == "chat.completion"
    assert stream.text.endswith("data: [DONE]\n\n")
    assert wire.bodies[-2:] == [orjson.dumps(CHAT), orjson.dumps({**CHAT, "stream": True})]


def test_length_lie_announces_far_less_than_it_sends(wire):
    chat = {**CHAT, "messages": [{"role": "user", "content": "[[mock:length_lie]]"}]}
    head, rest = post(wire.port, chat)
    assert f"content-length: {LIE}".encode() in head.lower()
    assert len(rest) > 1000 * LIE


def test_reset_after_sends_some_events_then_resets(wire):
    chat = {**CHAT, "stream": True,
            "messages": [{"role": "user", "content": "[[mock:reset_after=2]]"}]}  # fmt: skip
    head, rest = post(wire.port, chat)
    assert b"transfer-encoding: chunked" in head
    assert rest.count(b"data: ") == 2 and rest.endswith(b"<RST>")
