"""Decrypted content for exports that ask for it, a batch of records at a time.

Records whose data class the reader may not read (SPEC §7c) come out withheld, not decrypted.
Each batch first asks the store which of its data keys are still live, so content erased while
an export runs is reported erased from the next batch on, while opened keys are reused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from signalvault.crypto.envelope import Cipher
from signalvault.errors import CryptoError
from signalvault.store import Store
from signalvault.trail.audit import AuditTrail
from signalvault.trail.export.query import live_data_keys

MAX_OPEN_KEYS = 10_000
Readable = Callable[[dict[str, Any]], bool]  # may the reader see this record's content?


class ContentReader:
    """Prompt and response text of records, for one export."""

    def __init__(self, store: Store, trail: AuditTrail, readable: Readable | None = None) -> None:
        self._store = store
        self._readable = readable
        self._trail = trail
        self._keys: dict[str, Cipher] = {}

    def read(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """`prompt`, `response` (UTF-8 text or null) and `content_erased` for each row.

        Raises:
            CryptoError: content under a live key does not decrypt (altered); names the record.
        """
        wanted = {row["data_key_id"] for row in rows if row.get("data_key_id")}
        live = live_data_keys(self._store, wanted)
        for key_id in wanted - live:
            self._keys.pop(key_id, None)
        if len(self._keys) > MAX_OPEN_KEYS:
            self._keys.clear()
        return [self._content(row, live) for row in rows]

    def _content(self, row: dict[str, Any], live: set[str]) -> dict[str, Any]:
        if self._readable is not None and not self._readable(row):
            return {
                "prompt": None,
                "response": None,
                "content_erased": False,
                "content_withheld": True,
            }
        if row.get("tombstoned_at") is not None:
            return _erased()
        key_id = row.get("data_key_id")
        if key_id is not None and key_id not in live:
            return _erased()
        try:
            prompt, response = self._trail.decrypt(row, self._keys)
        except CryptoError:
            raise CryptoError(
                f"record {row['id']}: its content does not decrypt (altered); export stopped"
            ) from None
        return {
            "prompt": None if prompt is None else prompt.decode("utf-8", "replace"),
            "response": None if response is None else response.decode("utf-8", "replace"),
            "content_erased": False,
            "content_withheld": False,
        }


def _erased() -> dict[str, Any]:
    return {"prompt": None, "response": None, "content_erased": True, "content_withheld": False}
