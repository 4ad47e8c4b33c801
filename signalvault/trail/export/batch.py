"""The fast path of a metadata export: a batch of driver tuples to the encoder's records, with the
stored JSON (guardrails, attempts, events, details) checked to be well-formed and passed through
as it is stored instead of parsed and rendered again. It proves itself against the reference
(`record.stored_metadata`) byte for byte through the same encoder when it is created, and the
exporter falls back to the reference if not.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import orjson

from signalvault.errors import StoreError
from signalvault.trail.audit import EMPTY_ROW, INTERACTION
from signalvault.trail.export.formats import Encoder, encoder
from signalvault.trail.export.record import PROBES, MetadataRenderer, stored_metadata
from signalvault.trail.record_json import METADATA_FIELDS

_EVENT = "event"  # any kind but an interaction: records with actor and details
# What a missing nested value renders as (record_json: [] for lists, {} for details).
_EMPTY_LIST, _EMPTY_OBJECT = "[]", "{}"
# Decoding into Raw only finds where the one JSON value ends: it checks the text is well-formed
# JSON (as strictly as orjson.loads; tests/trail/test_export.py compares them on mutated texts)
# without building its objects, about a quarter of the cost of parsing it.
_WELL_FORMED = msgspec.json.Decoder(msgspec.Raw)


class BatchRenderer:
    """Renders batches of rows selected as `names` (tuples in that order) for format `fmt`."""

    def __init__(self, names: Sequence[str], fmt: str) -> None:
        index = {name: i for i, name in enumerate(names)}
        self._iso = MetadataRenderer().iso
        self._meta = operator.itemgetter(*(index[name] for name in METADATA_FIELDS))
        self._at = {name: index[name] for name in _USED if name in index}
        # JSON text goes into a JSON document as a fragment, into a CSV cell as the text itself.
        self._nested: Callable[[str], Any] = str if fmt == "csv" else orjson.Fragment
        # Each record starts as a copy of its kind's keys in the reference's order, so filling it
        # in neither grows nor re-hashes the dict (the keys come from the reference itself).
        self._shapes = {
            kind: dict.fromkeys(stored_metadata({**EMPTY_ROW, "kind": kind, "created_at": 0.0}))
            for kind in (INTERACTION, _EVENT)
        }
        self.is_exact = self._check(names, fmt)

    def render(self, rows: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
        """One record per row, equal once encoded to `stored_metadata` of the row as a dict.

        Raises:
            StoreError: a stored JSON value is damaged (names the record).
        """
        at, iso, meta, nested = self._at, self._iso, self._meta, self._nested
        created, completed, stream, content = (
            at["created_at"],
            at["completed_at"],
            at["is_stream"],
            at["has_content"],
        )
        key, kind, guardrails, attempts = at["id"], at["kind"], at["guardrails"], at["attempts"]
        actor, details, seq, leaf = at["actor"], at["details"], at["seq"], at["leaf_hash"]
        tombstoned, reason, events = at["tombstoned_at"], at["tombstone_reason"], at["events"]
        interaction, event = self._shapes[INTERACTION], self._shapes[_EVENT]
        records = []
        for row in rows:
            record = (interaction if row[kind] == INTERACTION else event).copy()
            record["time"] = iso(row[created])
            record["completed_at"] = iso(row[completed])
            record["stream"] = bool(row[stream])
            record["has_content"] = bool(row[content])
            record.update(zip(METADATA_FIELDS, meta(row), strict=True))
            if record["latency_ms"] is not None:
                record["latency_ms"] = round(record["latency_ms"], 2)
            if record["ttfb_ms"] is not None:
                record["ttfb_ms"] = round(record["ttfb_ms"], 2)
            record["tokens_estimated"] = bool(record["tokens_estimated"])
            record["guardrails"] = _nested(row, guardrails, key, nested, _EMPTY_LIST)
            record["attempts"] = _nested(row, attempts, key, nested, _EMPTY_LIST)
            record["events"] = _nested(row, events, key, nested, _EMPTY_LIST)
            if row[kind] != INTERACTION:
                record["actor"] = row[actor]
                record["details"] = _nested(row, details, key, nested, _EMPTY_OBJECT)
            value = row[leaf]
            record["seq"] = row[seq]
            record["leaf_hash"] = value.hex() if value is not None else None
            record["tombstoned_at"] = iso(row[tombstoned])
            record["tombstone_reason"] = row[reason]
            records.append(record)
        return records

    def _check(self, names: Sequence[str], fmt: str) -> bool:
        """Whether the probe rows encode exactly as the reference renders them."""
        for probe in PROBES:
            stored = {**EMPTY_ROW, **probe, "has_content": probe.get("prompt_ct") is not None}
            row = tuple(stored.get(name) for name in names)
            reference = stored_metadata(dict(zip(names, row, strict=True)))
            if _encoded(encoder(fmt, False), self.render([row])) != _encoded(
                encoder(fmt, False), [reference]
            ):
                return False
        return True


# Every column the renderer reads by position (has_content is selected as a label).
_USED = (
    "id",
    "created_at",
    "completed_at",
    "is_stream",
    "has_content",
    "kind",
    "guardrails",
    "attempts",
    "events",
    "actor",
    "details",
    "seq",
    "leaf_hash",
    "tombstoned_at",
    "tombstone_reason",
)


def _encoded(codec: Encoder, records: list[dict[str, Any]]) -> bytes:
    return codec.header() + codec.encode(records) + codec.footer()


def _nested(row: tuple[Any, ...], at: int, key: int, wrap: Callable[[str], Any], empty: str) -> Any:
    """A stored JSON value for the encoder: its text as stored (`wrap`ped), checked to be
    well-formed (the reference parses it; damage stops the export rather than writing a broken
    document). Text with a line break, whitespace the gateway's serializer never writes, and a
    value stored as bytes are parsed and rendered again as the reference does: as stored, the
    first would split a JSON Lines record over lines."""
    text: str | bytes | None = row[at]
    if not text:
        return wrap(empty)
    if type(text) is str and "\n" not in text and "\r" not in text:
        if is_well_formed(text):
            return wrap(text)
    else:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    raise StoreError(f"record {row[key]}: its stored JSON metadata is damaged; export stopped")


def is_well_formed(text: str) -> bool:
    """Whether `text` is one well-formed JSON value, checked without building its objects."""
    try:
        _WELL_FORMED.decode(text)
    except ValueError:  # msgspec.DecodeError; UnicodeEncodeError for a lone surrogate
        return False
    return True
