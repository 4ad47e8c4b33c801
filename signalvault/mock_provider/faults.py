"""Faults one request asks for in its own text, e.g. `[[mock:fail=503]]`; knows nothing about HTTP.

Markers (several may be combined):
    [[mock:fail=503]]          answer with this error status
    [[mock:fail_first=2]]      fail only the first 2 requests with this exact body (503 unless
                               `fail` says otherwise), so a retry of the same request succeeds
    [[mock:retry_after=3]]     `Retry-After` value sent with the failure (seconds or HTTP date)
    [[mock:hang]]              never answer, until the client gives up
    [[mock:latency_ms=200]]    wait this long before the response head
    [[mock:stall_after=2]]     stream: send 2 events, then nothing until the client gives up

A hostile provider (answered by `misbehave.py`; several may be combined):
    [[mock:malformed]]         a JSON answer cut off half-way; in a stream, one event's JSON
    [[mock:undecodable]]          bytes that are not UTF-8 inside the answer's text
    [[mock:deep=500]]          the answer carries an extra field nested 500 arrays deep
    [[mock:huge=9000000]]      the answer (in a stream, its middle event) carries an extra
                               string field of this many bytes
    [[mock:content_type=text/html]]  this Content-Type instead of the right one
    [[mock:foreign_error=400]] this error status, in the other API's error shape
    [[mock:chunk_bytes=3]]     stream: written 3 bytes at a time (events and characters split)
    [[mock:cut_after=2]]       stream: 2 events, then the connection closes mid-body
    [[mock:half_event]]        with cut_after: the first half of the next event goes out too,
                               50 ms before the connection closes
    [[mock:endless]]           the answer starts and never ends (a byte of padding every 10 ms)
    [[mock:length_lie]]        Content-Length far smaller than the body (`WireFaultServer` only)
    [[mock:reset_after=2]]     stream: 2 events, then a TCP reset (`WireFaultServer` only)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_MARKER = re.compile(rb"\[\[mock:([a-z_]+)(?:=([^\]]*))?\]\]")
_COUNTS: tuple[str, ...] = ("fail", "fail_first", "stall_after", "deep", "huge", "foreign_error")
_COUNTS += ("chunk_bytes", "cut_after", "reset_after")
_FLAGS = ("hang", "malformed", "undecodable", "endless", "length_lie", "half_event")
_KNOWN = frozenset({*_COUNTS, *_FLAGS, "retry_after", "latency_ms", "content_type"})


@dataclass(frozen=True, slots=True)
class Faults:
    fail: int | None = None
    fail_first: int | None = None
    retry_after: str | None = None
    is_hang: bool = False
    latency_ms: float = 0.0
    stall_after: int | None = None
    is_malformed: bool = False
    is_undecodable: bool = False
    deep: int | None = None
    huge: int | None = None
    content_type: str | None = None
    foreign_error: int | None = None
    chunk_bytes: int | None = None
    cut_after: int | None = None
    is_half_event: bool = False
    is_endless: bool = False
    is_length_lie: bool = False
    reset_after: int | None = None

    @property
    def misbehaves(self) -> bool:
        """True when the answer itself must be broken (see `misbehave.py`)."""
        return (
            self.is_malformed
            or self.is_undecodable
            or self.deep is not None
            or self.huge is not None
            or self.content_type is not None
            or self.chunk_bytes is not None
            or self.cut_after is not None
            or self.is_endless
        )

    @property
    def status(self) -> int | None:
        """The error status to answer with, if any (before counting `fail_first`)."""
        if self.fail is None and self.fail_first is None:
            return None
        return self.fail or 503


def read_faults(body: bytes) -> Faults | None:
    """The faults marked in a raw request body, or None when it has no fault markers.

    Raises:
        ValueError: a marker with an unusable value (the mock answers 400, naming it).
    """
    if b"[[mock:" not in body:  # the common case costs one substring search
        return None
    values: dict[str, str] = {}
    for match in _MARKER.finditer(body):
        name = match.group(1).decode()
        if name in _KNOWN:
            values[name] = (match.group(2) or b"").decode("utf-8", "replace")
    if not values:
        return None
    try:
        counts = {name: int(values[name]) for name in _COUNTS if name in values}
        latency_ms = float(values.get("latency_ms", "0"))
    except ValueError:
        raise ValueError(f"mock marker: {', '.join(_COUNTS)} and latency_ms take numbers") from None
    for name in ("fail", "foreign_error"):
        if name in counts and not 400 <= counts[name] <= 599:
            raise ValueError(f"mock marker: {name} must be an HTTP error status (400-599)")
    if min(counts.values(), default=0) < 0 or not 0 <= latency_ms < math.inf:
        raise ValueError("mock marker: counts and delays must be >= 0")
    if counts.get("chunk_bytes") == 0:
        raise ValueError("mock marker: chunk_bytes must be at least 1")
    return Faults(
        fail=counts.get("fail"),
        fail_first=counts.get("fail_first"),
        retry_after=values.get("retry_after") or None,
        is_hang="hang" in values,
        latency_ms=latency_ms,
        stall_after=counts.get("stall_after"),
        is_malformed="malformed" in values,
        is_undecodable="undecodable" in values,
        deep=counts.get("deep"),
        huge=counts.get("huge"),
        content_type=values.get("content_type") or None,
        foreign_error=counts.get("foreign_error"),
        chunk_bytes=counts.get("chunk_bytes"),
        cut_after=counts.get("cut_after"),
        is_half_event="half_event" in values,
        is_endless="endless" in values,
        is_length_lie="length_lie" in values,
        reset_after=counts.get("reset_after"),
    )
