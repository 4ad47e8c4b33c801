"""Faults one request asks for in its own text, e.g. `[[mock:fail=503]]`; knows nothing about HTTP.

Markers (several may be combined):
    [[mock:fail=503]]          answer with this error status
    [[mock:fail_first=2]]      fail only the first 2 requests with this exact body (503 unless
                               `fail` says otherwise), so a retry of the same request succeeds
    [[mock:retry_after=3]]     `Retry-After` value sent with the failure (seconds or HTTP date)
    [[mock:hang]]              never answer, until the client gives up
    [[mock:latency_ms=200]]    wait this long before the response head
    [[mock:stall_after=2]]     stream: send 2 events, then nothing until the client gives up
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_MARKER = re.compile(rb"\[\[mock:([a-z_]+)(?:=([^\]]*))?\]\]")
_KNOWN = frozenset({"fail", "fail_first", "retry_after", "hang", "latency_ms", "stall_after"})


@dataclass(frozen=True, slots=True)
class Faults:
    fail: int | None = None
    fail_first: int | None = None
    retry_after: str | None = None
    is_hang: bool = False
    latency_ms: float = 0.0
    stall_after: int | None = None

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
        fail = int(values["fail"]) if "fail" in values else None
        fail_first = int(values["fail_first"]) if "fail_first" in values else None
        stall_after = int(values["stall_after"]) if "stall_after" in values else None
        latency_ms = float(values.get("latency_ms", "0"))
    except ValueError:
        raise ValueError(
            "mock marker: fail, fail_first, stall_after and latency_ms take numbers"
        ) from None
    if fail is not None and not 400 <= fail <= 599:
        raise ValueError("mock marker: fail must be an HTTP error status (400-599)")
    if min(fail_first or 0, stall_after or 0) < 0 or not 0 <= latency_ms < math.inf:
        raise ValueError("mock marker: counts and delays must be >= 0")
    return Faults(
        fail=fail,
        fail_first=fail_first,
        retry_after=values.get("retry_after") or None,
        is_hang="hang" in values,
        latency_ms=latency_ms,
        stall_after=stall_after,
    )
