"""Requests broken below JSON, written as raw bytes because no HTTP client sends them: lengths
that lie, chunked bodies (good and bad), both length headers at once, huge and many headers,
folded or NUL-bearing header lines, odd request targets, pipelining. They meet uvicorn's
httptools parser and `GuardedHttpTools` (server/protocol.py) before the gateway."""

from __future__ import annotations

import orjson
from hypothesis import strategies as st

from tests.hostile.harness import HttpRequest

GOOD = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
PATHS = ("/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1/embeddings")
ODD_TARGETS = (
    "//v1/chat/completions",
    "/v1/chat/completions/",
    "/v1/chat%2Fcompletions",
    "/v1/./chat/completions",
    "/V1/CHAT/COMPLETIONS",
    "/v1/chat/completions?x=%ff%00",
    "http://gateway/v1/chat/completions",
    "*",
)
CASES = (
    "short_length",
    "long_length",
    "chunked",
    "chunked_bad",
    "length_and_chunked",
    "two_lengths",
    "huge_header",
    "many_headers",
    "folded_header",
    "control_bytes",
    "http10",
    "odd_target",
    "expect_continue",
    "pipelined",
    "utf8_header",
    "lowercase_method",
)


def _request(
    target: str, headers: list[bytes], body: bytes, method: bytes = b"POST", version: bytes = b"1.1"
) -> bytes:
    head = [method + b" " + target.encode("latin-1") + b" HTTP/" + version, *headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _chunked(body: bytes, sizes: list[int], extension: bytes = b"") -> bytes:
    out, at = b"", 0
    for size in sizes:
        piece = body[at : at + size]
        if not piece:
            break
        out += b"%x%s\r\n%s\r\n" % (len(piece), extension, piece)
        at += len(piece)
    if at < len(body):
        out += b"%x\r\n%s\r\n" % (len(body) - at, body[at:])
    return out + b"0\r\n\r\n"


@st.composite
def raw_requests(draw: st.DrawFn, key: str) -> HttpRequest:
    """One raw request (or several, pipelined) with its framing broken one way."""
    case = draw(st.sampled_from(CASES))
    path = draw(st.sampled_from(PATHS))
    body = orjson.dumps(GOOD)
    auth = b"authorization: Bearer " + key.encode()
    base = [b"host: gateway", auth, b"content-type: application/json", b"connection: close"]
    length = b"content-length: %d" % len(body)
    if case == "short_length":
        cut = draw(st.integers(0, len(body) - 1))
        raw = _request(path, [*base, b"content-length: %d" % cut], body)
    elif case == "long_length":
        extra = draw(st.sampled_from([1, 100, 10**6, 10**12]))
        raw = _request(path, [*base, b"content-length: %d" % (len(body) + extra)], body)
    elif case == "chunked":
        sizes = draw(st.lists(st.integers(1, 40), min_size=1, max_size=8))
        extension = draw(st.sampled_from([b"", b";name=value", b";" + b"x" * 500]))
        raw = _request(
            path, [*base, b"transfer-encoding: chunked"], _chunked(body, sizes, extension)
        )
    elif case == "chunked_bad":
        broken = draw(
            st.sampled_from(
                [
                    b"zz\r\n" + body + b"\r\n0\r\n\r\n",  # not hex
                    b"%x\r\n%s\r\n" % (len(body) + 5, body),  # announces more than it sends
                    b"%x\r\n%s\r\n" % (len(body), body),  # no last chunk
                    b"-1\r\n" + body,
                    b"ffffffffffffffffff\r\n" + body,
                ]
            )
        )
        raw = _request(path, [*base, b"transfer-encoding: chunked"], broken)
    elif case == "length_and_chunked":  # the request-smuggling shape
        raw = _request(
            path, [*base, length, b"transfer-encoding: chunked"], _chunked(body, [len(body)])
        )
    elif case == "two_lengths":
        raw = _request(path, [*base, length, b"content-length: 3"], body)
    elif case == "huge_header":
        size = draw(st.sampled_from([8_000, 31_000, 33_000, 100_000, 2_000_000]))
        name = draw(st.sampled_from([b"x-filler", b"x-signalvault-user", b"authorization"]))
        raw = _request(path, [*base, length, name + b": " + b"a" * size], body)
    elif case == "many_headers":
        count = draw(st.sampled_from([100, 1_000, 5_000]))
        filler = [b"x-h%d: v" % i for i in range(count)]
        raw = _request(path, [*base, length, *filler], body)
    elif case == "folded_header":
        raw = _request(path, [*base, length, b"x-signalvault-user: alice", b" continued"], body)
    elif case == "control_bytes":
        value = draw(st.sampled_from([b"a\x00b", b"a\rb", b"a\x7fb", b"a\x1bb"]))
        raw = _request(path, [*base, length, b"x-signalvault-session: " + value], body)
    elif case == "http10":
        raw = _request(
            path, [auth, b"content-type: application/json", length], body, version=b"1.0"
        )
    elif case == "odd_target":
        raw = _request(draw(st.sampled_from(ODD_TARGETS)), [*base, length], body)
    elif case == "expect_continue":
        raw = _request(path, [*base, length, b"expect: 100-continue"], body)
    elif case == "pipelined":
        keep = [b"host: gateway", auth, b"content-type: application/json", length]
        raw = _request(path, keep, body) * 2 + draw(st.binary(min_size=1, max_size=40))
    elif case == "utf8_header":
        raw = _request(path, [*base, length, "x-signalvault-user: Zoë 東京".encode()], body)
    else:  # lowercase_method
        raw = _request(path, [*base, length], body, method=b"post")
    # A body announced longer than sent would wait for the body timeout: end it by half-closing.
    return HttpRequest("RAW", path, (), b"", 1, case, raw, half_close=case == "long_length")
