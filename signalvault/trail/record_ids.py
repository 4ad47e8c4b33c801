"""Audit record ids: UUIDv7, time-ordered and strictly increasing within a process, so ids sort
by creation and serve as a pagination cursor (re-exported by trail/audit.py)."""

from __future__ import annotations

import os
import threading
import time

_last_id = 0  # the 122 non-version bits of this process's newest record id
_id_lock = threading.Lock()


def new_record_id() -> str:
    """A UUIDv7: time-ordered, so ids sort by creation and serve as a pagination cursor.

    Strictly increasing within a process (RFC 9562 §6.2): in the same millisecond, random bits
    alone would order records at random, so a listing could show an event before its cause.
    """
    global _last_id
    millis = time.time_ns() // 1_000_000
    candidate = (millis << 74) | (int.from_bytes(os.urandom(10), "big") >> 6)
    with _id_lock:
        bits = _last_id = max(candidate, _last_id + 1)
    # 48 bits of time, version 7, 12 bits, variant 0b10, 62 bits.
    value = ((bits >> 74) << 80) | (0x7 << 76) | (((bits >> 62) & 0xFFF) << 64)
    value |= (0b10 << 62) | (bits & ((1 << 62) - 1))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
