"""Framing attacks on a real socket (uvicorn + GuardedHttpTools, as `serve` runs): each gets a
clear 4xx or a closed connection, never a 5xx, and the gateway keeps serving. Pinned cases of
what tests/hostile/framing.py generates."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.hostile.framing import GOOD, _chunked, _request
from tests.hostile.harness import GatewayUnderFuzz, HttpRequest, gateway_under_fuzz

BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
PATH = "/v1/chat/completions"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[GatewayUnderFuzz]:
    with gateway_under_fuzz(tmp_path_factory.mktemp("framing")) as running:
        yield running


def head(gateway: GatewayUnderFuzz, *extra: bytes) -> list[bytes]:
    return [
        b"host: gateway",
        b"authorization: Bearer " + gateway.key.encode(),
        b"content-type: application/json",
        b"connection: close",
        *extra,
    ]


def exchange(gateway: GatewayUnderFuzz, raw: bytes, label: str, half_close: bool = False):
    request = HttpRequest("RAW", PATH, (), b"", 1, label, raw, half_close)
    answers = gateway.send(request)
    gateway.check(request, answers)  # the fuzz property: no 5xx, healthy, records match
    return answers


@pytest.mark.parametrize(
    ("label", "extra", "body", "status"),
    [
        ("two different lengths", [b"content-length: 70", b"content-length: 3"], BODY, 400),
        (
            "length and chunked",
            [b"content-length: 70", b"transfer-encoding: chunked"],
            _chunked(BODY, [70]),
            400,
        ),
        ("not hex", [b"transfer-encoding: chunked"], b"zz\r\n" + BODY + b"\r\n0\r\n\r\n", 400),
        ("folded header", [b"content-length: 70", b"x-signalvault-user: a", b" b"], BODY, 400),
        ("NUL in a header", [b"content-length: 70", b"x-signalvault-session: a\x00b"], BODY, 400),
        ("a 100 kB header", [b"content-length: 70", b"x-filler: " + b"a" * 100_000], BODY, 431),
        (
            "5000 headers",
            [b"content-length: 70", *(b"x-h%d: v" % i for i in range(5000))],
            BODY,
            431,
        ),
        ("chunked", [b"transfer-encoding: chunked"], _chunked(BODY, [5, 1, 64]), 200),
        ("chunk extensions", [b"transfer-encoding: chunked"], _chunked(BODY, [9], b";a=b"), 200),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_framing_gets_a_clear_answer(gateway, label, extra, body, status):
    answers = exchange(gateway, _request(PATH, head(gateway, *extra), body), label)
    assert [answer.status for answer in answers] == [status]
    assert gateway.good_request_succeeds()


def test_a_body_shorter_than_announced_is_dropped_unanswered_and_unrecorded(gateway):
    count = gateway.mock.stats()["total"]
    raw = _request(PATH, head(gateway, b"content-length: 1000"), BODY)
    answers = exchange(gateway, raw, "long length", half_close=True)
    assert answers == []  # the caller hung up first: no one to answer
    assert gateway.mock.stats()["total"] == count


def test_garbage_pipelined_behind_a_request_is_recorded_as_the_caller_leaving(gateway):
    """Before: uvicorn closed the socket on the garbage while the first request was being
    forwarded; its answer then failed to write (RuntimeError on uvloop), logged as an
    unexpected error and recorded as a 500 gateway_error."""
    keep = [b"host: gateway", b"authorization: Bearer " + gateway.key.encode(),
            b"content-type: application/json", b"content-length: %d" % len(BODY)]  # fmt: skip
    raw = _request(PATH, keep, BODY) * 2 + b"\x00garbage\r\n\r\n"
    answers = exchange(gateway, raw, "pipelined garbage")
    assert [answer.status for answer in answers] == [400]  # uvicorn's, for the garbage
    gateway.wait_idle()
    rows = [row for row in _recent(gateway) if row["api"] == "chat"]
    assert rows[0]["outcome"] == "cancelled" and rows[0]["error_code"] == "cancelled"


def _recent(gateway: GatewayUnderFuzz) -> list[dict]:
    from signalvault.store import RecordFilter

    assert gateway.app.services is not None
    for _ in range(500):
        gateway.app.services.store.flush()
        rows = gateway.app.services.store.list_records(RecordFilter(), limit=5)
        if rows and rows[0]["outcome"] != "unknown":
            return rows
        time.sleep(0.01)
    return rows


assert GOOD  # the framing module's body is what BODY spells out
