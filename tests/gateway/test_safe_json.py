"""safe_json: what it parses it can always write back, nested values are refused at the limit
(not half-way through a request), and the canonical bytes are what was parsed."""

from __future__ import annotations

import orjson
import pytest

from signalvault.gateway import safe_json
from signalvault.gateway.safe_json import MAX_DEPTH, InvalidJSON, TooDeep


def nested(depth: int, leaf: object = "bob@example.com") -> bytes:
    return b'{"a":' * (depth - 1) + b"[" + orjson.dumps(leaf) + b"]" + b"}" * (depth - 1)


def test_a_value_at_the_limit_is_accepted_and_written_back_even_wrapped():
    value, canonical = safe_json.loads_canonical(nested(MAX_DEPTH))
    assert canonical == orjson.dumps(value)
    wrapped = value
    for _ in range(254 - MAX_DEPTH):  # the room left for the gateway's own records
        wrapped = [wrapped]
    assert safe_json.dumps(wrapped).startswith(b"[[")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 255, 1000, 1024, 1025, 50_000])
def test_deeper_values_are_refused_as_too_deep(depth):
    with pytest.raises(TooDeep, match=f"deeper than {MAX_DEPTH}"):
        safe_json.loads(nested(depth))
    with pytest.raises(TooDeep):
        safe_json.loads_canonical(nested(depth))


def test_brackets_inside_strings_do_not_count_as_depth():
    text = "[{" * 5000
    value, canonical = safe_json.loads_canonical(orjson.dumps({"content": text}))
    assert value == {"content": text}
    assert canonical == orjson.dumps(value)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"a": "\xff"}', "UTF-8"),
        (b'{"a": "\xed\xa0\x80"}', "UTF-8"),  # a surrogate encoded as UTF-8
        (b'{"a": "\\ud800"}', "surrogate"),  # a lone surrogate escape
        (b'{"a": 1', "position"),
        (b"", "position"),
    ],
)
def test_text_that_could_not_be_written_back_is_refused(raw, problem):
    with pytest.raises(InvalidJSON, match=problem) as caught:
        safe_json.loads(raw)
    assert not isinstance(caught.value, TooDeep)


def test_a_key_sent_twice_is_written_once_with_the_value_that_was_read():
    value, canonical = safe_json.loads_canonical(b'{"m": "first", "x": 1, "m": "second"}')
    assert value == {"m": "second", "x": 1}
    assert canonical == b'{"m":"second","x":1}'


def test_the_length_shortcut_holds_at_the_boundary():
    """Text of up to 2 * MAX_DEPTH bytes skips the depth pass: it cannot nest deeper."""
    assert safe_json.loads(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    with pytest.raises(TooDeep):
        safe_json.loads(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
