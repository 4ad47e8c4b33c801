"""What a sealed audit record commits to: its Merkle leaf, derived from the stored row alone.

The leaf data is canonical JSON (sorted keys) of every column except `leaf_hash`, `seq`
included so a record moved to another position no longer matches. Ciphertext columns enter as
their SHA-256 digests: the content is committed, and erasing it later leaves the leaf provable.
Columns added after the first version enter only when set, so every leaf sealed before they
existed still verifies, and setting or clearing one on any record changes its leaf.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Boolean, Float, Integer, String

from signalvault.store.schema import audit_records
from signalvault.trail.integrity.merkle import leaf_hash

LEAF_VERSION = 1
CIPHERTEXT_COLUMNS = frozenset({"prompt_ct", "response_ct", "events_ct"})
# Columns added to the table after LEAF_VERSION 1 (migration 0008 on): part of the leaf only when
# not NULL. A new column must be added here (a test fails when the schema and this list disagree).
ADDED_COLUMNS = frozenset(
    {
        "classification",
        "run_id",
        "parent_id",
        "call_id",
        "tool_name",
        "events",
        "events_ct",
        "tool_calls",
    }
)
LEAF_COLUMNS = tuple(str(c.name) for c in audit_records.c if c.name != "leaf_hash")
# Position of every column in a row selected as `select(audit_records)` (table order).
COLUMN_INDEX = {str(c.name): i for i, c in enumerate(audit_records.c)}
# A tombstone keeps these; every other nullable column is cleared (NULL).
TOMBSTONE_KEPT = frozenset(
    {"id", "kind", "created_at", "seq", "leaf_hash", "tombstoned_at", "tombstone_reason"}
)
# NOT NULL columns a tombstone cannot clear; they are not part of what a tombstone proves.
_NOT_NULL = frozenset(c.name for c in audit_records.c if not c.nullable)


def _digest(value: Any) -> str:
    return hashlib.sha256(value).hexdigest()


def _encoder(column: Any) -> Callable[[Any], Any]:
    """Values as one canonical JSON type whatever the driver returned (SQLite gives 0/1 for
    booleans, a raw cursor gives what SQLAlchemy would have converted)."""
    if column.name in CIPHERTEXT_COLUMNS:
        return _digest
    if isinstance(column.type, Boolean):
        return bool
    if isinstance(column.type, Float):
        return float
    if isinstance(column.type, Integer):  # BigInteger included
        return int
    if isinstance(column.type, String):  # Text included
        return str
    raise TypeError(f"no leaf encoding for column {column.name}")


# Sorted by name, so the JSON object comes out with sorted keys ("_v" sorts first).
_ENCODERS = tuple(
    (COLUMN_INDEX[str(c.name)], str(c.name), _encoder(c), str(c.name) in ADDED_COLUMNS)
    for c in sorted(audit_records.c, key=lambda c: str(c.name))
    if c.name != "leaf_hash"
)


def leaf_data_of_values(values: Sequence[Any]) -> bytes:
    """The canonical bytes a record's leaf hashes, from a row in table column order."""
    out: dict[str, Any] = {"_v": LEAF_VERSION}
    for index, name, encode, is_added in _ENCODERS:
        value = values[index]
        if value is not None:
            out[name] = encode(value)
        elif not is_added:
            out[name] = None
    return orjson.dumps(out)


def leaf_data(row: Mapping[str, Any]) -> bytes:
    """The canonical bytes a record's leaf hashes (the row must have `seq` set)."""
    return leaf_data_of_values([row.get(name) for name in COLUMN_INDEX])


def record_leaf(row: Mapping[str, Any]) -> bytes:
    return leaf_hash(leaf_data(row))


def uncleared_columns(row: Mapping[str, Any]) -> list[str]:
    """Columns a tombstone should have cleared but still holds (empty for a proper tombstone)."""
    return [
        name
        for name in LEAF_COLUMNS
        if name not in TOMBSTONE_KEPT and name not in _NOT_NULL and row[name] is not None
    ]
