"""A hostile provider's answers: the answer the mock composed, broken as a request's fault markers
ask (see faults.py): malformed, deeply nested or huge JSON, bytes that are not UTF-8, a wrong
Content-Type, a stream split at odd byte offsets, cut short, or never ending.

Works on bytes and ASGI messages; imports only mock_provider.faults.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from signalvault.mock_provider.faults import Faults

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

NOT_UTF8 = b"\xe2\x82"  # the first two bytes of a three-byte character, and no third
_PAD_EVERY = 0.01  # seconds between the bytes of an endless answer
_PING = b": ping\n\n"  # an SSE comment: keeps a stream alive without carrying anything
_HALF_EVENT_PAUSE = 0.05  # seconds between half an event and the cut


def break_body(body: bytes, faults: Faults) -> bytes:
    """A JSON answer broken as `faults` say."""
    if faults.deep is not None and body.endswith(b"}"):
        body = body[:-1] + b',"x_deep":' + _nested(faults.deep) + b"}"
    if faults.huge is not None and body.endswith(b"}"):
        body = body[:-1] + b',"x_pad":"' + b"x" * faults.huge + b'"}'
    if faults.is_undecodable:
        body = _spoil(body)
    if faults.is_malformed:
        body = body[: len(body) // 2]
    return body


def break_events(events: list[bytes], faults: Faults) -> list[bytes]:
    """SSE events broken as `faults` say; the middle event (one carrying text) takes the hit."""
    events = list(events)
    middle = len(events) // 2
    if faults.deep is not None:
        events[middle] = events[middle].replace(
            b"data: {", b'data: {"x_deep":' + _nested(faults.deep) + b",", 1
        )
    if faults.huge is not None:
        events[middle] = events[middle].replace(
            b"data: {", b'data: {"x_pad":"' + b"x" * faults.huge + b'",', 1
        )
    if faults.is_undecodable:
        events[middle] = _spoil(events[middle])
    if faults.is_malformed:
        events[middle] = events[middle][: len(events[middle]) // 2] + b"\n\n"
    if faults.cut_after is not None:
        after = events[faults.cut_after : faults.cut_after + 1]
        events = events[: faults.cut_after]
        if faults.is_half_event and after:
            events.append(after[0][: len(after[0]) // 2])
    return events


def writes(events: list[bytes], faults: Faults) -> list[bytes]:
    """How the stream goes out: `chunk_bytes` at a time, else one write per event, with an
    invalid sequence split between two writes so a reader must not decode writes one by one."""
    stream = b"".join(events)
    size = faults.chunk_bytes
    if size is None and faults.is_undecodable and NOT_UTF8 in stream:
        cut = stream.index(NOT_UTF8) + 1
        return [stream[:cut], stream[cut:]]
    if size is None:
        return events
    return [stream[i : i + size] for i in range(0, len(stream), size)]


async def respond(
    send: Send,
    receive: Receive,
    status: int,
    body: bytes,
    events: list[bytes] | None,
    faults: Faults,
) -> None:
    """Send the answer (a JSON body, or SSE `events`) broken as `faults` say."""
    is_stream = events is not None
    default_type = "text/event-stream; charset=utf-8" if is_stream else "application/json"
    headers = [(b"content-type", (faults.content_type or default_type).encode("latin-1"))]
    if is_stream:
        assert events is not None
        pieces = writes(break_events(events, faults), faults)
        if faults.is_endless and pieces and faults.cut_after is None:
            pieces = pieces[:-1]  # the terminal event never comes
    else:
        broken = break_body(body, faults)
        pieces = [broken[: len(broken) // 2]] if faults.is_endless else [broken]
        if not faults.is_endless:
            headers.append((b"content-length", str(len(broken)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        pause = 0.001 if len(pieces) <= 64 else 0.0  # apart, within any timeout a test sets
        for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            await asyncio.sleep(pause)
        if faults.is_endless:
            pad = _PING if is_stream else b" "
            while not gone.done():
                await send({"type": "http.response.body", "body": pad, "more_body": True})
                await asyncio.wait({gone}, timeout=_PAD_EVERY)
        elif not (is_stream and faults.cut_after is not None):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        elif faults.is_half_event:
            await asyncio.sleep(_HALF_EVENT_PAUSE)  # read apart from the cut that follows
        # A cut stream returns unfinished: the server closes the connection mid-body.
    finally:
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _spoil(data: bytes) -> bytes:
    """`data` with a truncated UTF-8 sequence inside its first string value."""
    at = data.find(b'":"')
    at = len(data) // 2 if at == -1 else at + 3
    return data[:at] + NOT_UTF8 + b"(" + data[at:]


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
