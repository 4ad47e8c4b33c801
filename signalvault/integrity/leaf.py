"""What a sealed audit record commits to: its Merkle leaf, derived from the stored row alone.

The leaf data is canonical JSON (sorted keys) of every column except `leaf_hash`, `seq`
included so a record moved to another position no longer matches. Ciphertext columns enter as
their SHA-256 digests: the content is committed, and erasing it later leaves the leaf provable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from signalvault.integrity.merkle import leaf_hash
from signalvault.store.schema import audit_records

LEAF_VERSION = 1
CIPHERTEXT_COLUMNS = frozenset({"prompt_ct", "response_ct"})
# Changing this list changes every leaf: a new column needs a new LEAF_VERSION that says whether
# older leaves include it (a test fails when the schema and this list disagree).
LEAF_COLUMNS = tuple(str(c.name) for c in audit_records.c if c.name != "leaf_hash")
# A tombstone keeps these; every other nullable column is cleared (NULL).
TOMBSTONE_KEPT = frozenset(
    {"id", "kind", "created_at", "seq", "leaf_hash", "tombstoned_at", "tombstone_reason"}
)
# NOT NULL columns a tombstone cannot clear; they are not part of what a tombstone proves.
_NOT_NULL = frozenset(c.name for c in audit_records.c if not c.nullable)


def leaf_data(row: Mapping[str, Any]) -> bytes:
    """The canonical bytes a record's leaf hashes (the row must have `seq` set)."""
    values: dict[str, Any] = {"_v": LEAF_VERSION}
    for name in LEAF_COLUMNS:
        value = row[name]
        if name in CIPHERTEXT_COLUMNS and value is not None:
            value = hashlib.sha256(value).hexdigest()
        values[name] = value
    return orjson.dumps(values, option=orjson.OPT_SORT_KEYS)


def record_leaf(row: Mapping[str, Any]) -> bytes:
    return leaf_hash(leaf_data(row))


def uncleared_columns(row: Mapping[str, Any]) -> list[str]:
    """Columns a tombstone should have cleared but still holds (empty for a proper tombstone)."""
    return [
        name
        for name in LEAF_COLUMNS
        if name not in TOMBSTONE_KEPT and name not in _NOT_NULL and row[name] is not None
    ]
