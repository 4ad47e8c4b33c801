"""The JSON the gateway reads from callers and providers and writes out again: `loads` refuses
what `dumps` could not write back, so re-emitting a parsed body (redacted, with its model
changed, an SSE event rewritten) never fails half-way through a request.

orjson reads 1024 levels of nesting but writes only 254, and Python code walking a parsed body
recursively stops near 1000; `MAX_DEPTH` sits well below both, leaving room for the gateway to
wrap parsed values into its own records. Strings are already safe: orjson accepts neither
invalid UTF-8 nor lone surrogates, so every parsed string encodes again. Imports nothing from
signalvault.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_DEPTH = 128  # arrays and objects inside each other; real SDK requests stay far below
_ENCODER_DEPTH = 254  # the most nested containers orjson.dumps writes
# Wrapping a value in this many lists makes orjson's own depth check refuse values deeper than
# MAX_DEPTH, so the limit is checked at C speed, by the same pass that writes the bytes.
_PAD = _ENCODER_DEPTH - MAX_DEPTH


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


def loads_canonical(data: bytes) -> tuple[Any, bytes]:
    """Parse as `loads`, and return the value with its canonical bytes (`dumps` of it): what a
    provider receives, so every parser downstream reads exactly what the guardrails read
    (a key sent twice, say, is sent once: the value the gateway screened).

    Raises:
        InvalidJSON: as `loads`.
    """
    return _parse(data, canonical=True)


def dumps(value: Any) -> bytes:
    """Serialise a value from `loads` (edited or not: strings replaced, keys added, wrapped in
    up to `_ENCODER_DEPTH - MAX_DEPTH` more levels). The one serialiser of re-emitted bodies."""
    return orjson.dumps(value)


def _parse(data: bytes, *, canonical: bool) -> tuple[Any, bytes]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "UTF-8" in exc.msg:
            raise InvalidJSON("it is not valid UTF-8") from None
        if "depth" in exc.msg:
            raise TooDeep(f"it nests deeper than {MAX_DEPTH} levels") from None
        raise InvalidJSON(f"{exc.msg} (position {exc.pos})") from None
    # Fewer opening brackets than the limit, strings included, cannot nest too deep: the
    # common case costs two byte counts and no second pass.
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return value, orjson.dumps(value) if canonical else data
    try:
        padded = orjson.dumps(_wrap(value))
    except orjson.JSONEncodeError:
        raise TooDeep(f"it nests deeper than {MAX_DEPTH} levels") from None
    return value, padded[_PAD:-_PAD]


def _wrap(value: Any) -> Any:
    for _ in range(_PAD):
        value = [value]
    return value
