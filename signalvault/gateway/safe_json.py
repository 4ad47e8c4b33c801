"""The JSON the gateway reads from callers and providers and writes out again: `loads` refuses
what `dumps` could not write back, so re-emitting a parsed body (redacted, with its model
changed, an SSE event rewritten) never fails half-way through a request.

orjson reads 1024 levels of nesting but writes only 254; `MAX_DEPTH` sits a few levels below
that, so the gateway may still wrap a parsed value into its own records (the logged form of a
stream holds the provider's error object, say). Python code walking a parsed body recursively
stays far from its recursion limit. Strings are already safe: orjson accepts neither invalid
UTF-8 nor lone surrogates, so every parsed string encodes again. Imports nothing from
signalvault.
"""

from __future__ import annotations

from typing import Any

import orjson

_ENCODER_DEPTH = 254  # the most nested containers orjson.dumps writes
_PAD = 4  # levels left for the gateway's own wrapping
MAX_DEPTH = _ENCODER_DEPTH - _PAD  # arrays and objects inside each other; SDK requests use ~10
# A provider echoes request fields (`metadata`, `instructions`, `tools`) inside its answer, and a
# stream event wraps that answer once more: a request nested right up to MAX_DEPTH came back too
# deep to read, and its stream was cut (found by `make fuzz`). Requests stop this much earlier.
ECHO_MARGIN = 8
REQUEST_DEPTH = MAX_DEPTH - ECHO_MARGIN


class InvalidJSON(ValueError):
    """Not JSON the gateway can carry; the message names the problem, never the content."""


class TooDeep(InvalidJSON):
    """JSON nested deeper than `MAX_DEPTH`."""


def loads(data: bytes) -> Any:
    """Parse JSON text nested at most `MAX_DEPTH` deep.

    Raises:
        InvalidJSON: not UTF-8 or not JSON; `TooDeep` (a subclass) when it nests deeper than
            `MAX_DEPTH`.
    """
    value, _ = _parse(data, canonical=False)
    return value


def loads_canonical(data: bytes, max_depth: int = MAX_DEPTH) -> tuple[Any, bytes]:
    """Parse as `loads` (at most `max_depth` deep, MAX_DEPTH or less: REQUEST_DEPTH for a
    caller's body), and return the value with its canonical bytes (`dumps` of it): what a
    provider receives, so every parser downstream reads exactly what the guardrails read
    (a key sent twice, say, is sent once: the value the gateway screened).

    Raises:
        InvalidJSON: as `loads`.
    """
    return _parse(data, canonical=True, max_depth=max_depth)


def dumps(value: Any) -> bytes:
    """Serialise a value from `loads` (edited or not: strings replaced, keys added, wrapped in
    up to 4 more levels). The one serialiser of re-emitted bodies."""
    return orjson.dumps(value)


def _parse(data: bytes, *, canonical: bool, max_depth: int = MAX_DEPTH) -> tuple[Any, bytes]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "UTF-8" in exc.msg:
            raise InvalidJSON("it is not valid UTF-8") from None
        if "depth" in exc.msg:
            raise TooDeep(f"it nests deeper than {max_depth} levels") from None
        raise InvalidJSON(f"{exc.msg} (position {exc.pos})") from None
    if len(data) <= 2 * max_depth and not canonical:
        return value, data  # too short to nest that deep: most SSE events cost nothing more
    pad = _ENCODER_DEPTH - min(max_depth, MAX_DEPTH)
    wrapped = value
    for _ in range(pad):
        wrapped = [wrapped]
    try:
        # Inside `pad` more lists, orjson's own depth check refuses values deeper than
        # max_depth: the limit costs one pass at C speed, the pass that writes the canonical bytes.
        padded = orjson.dumps(wrapped)
    except orjson.JSONEncodeError:
        raise TooDeep(f"it nests deeper than {max_depth} levels") from None
    return value, padded[pad:-pad] if canonical else data
