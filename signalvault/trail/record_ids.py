"""Audit record ids: UUIDv7, time-ordered and strictly increasing within a process, so ids sort
by creation and serve as a pagination cursor (re-exported by trail/audit.py)."""

from __future__ import annotations

import os
import threading
import time

_RANDOM_BITS = 74  # rand_a (12) and rand_b (62) of RFC 9562's layout
_RAND_B_MASK = (1 << 62) - 1
# (millisecond, 74 bits) of this process's newest id: fresh random bits in each new millisecond,
# the previous bits plus one within the same one (RFC 9562 §6.2, method 2).
_last = [0, 0]
_id_lock = threading.Lock()


def new_record_id() -> str:
    """A UUIDv7: time-ordered, so ids sort by creation and serve as a pagination cursor.

    Strictly increasing within a process: in the same millisecond, random bits alone would order
    records at random, so a listing could show an event before its cause. A clock that steps
    back keeps the newest id's millisecond. Bits kept as small ints and formatted with `%`: one
    id is made per record and per tool event, and 128-bit arithmetic cost a third more.
    """
    millis = time.time_ns() // 1_000_000
    with _id_lock:
        if millis > _last[0]:
            bits = int.from_bytes(os.urandom(10), "big") >> (80 - _RANDOM_BITS)
        else:
            millis = _last[0]
            bits = _last[1] + 1
            if bits >> _RANDOM_BITS:  # 2^74 ids in one millisecond: borrow the next one
                millis, bits = millis + 1, 0
        _last[0], _last[1] = millis, bits
    rand_b = bits & _RAND_B_MASK
    return "%08x-%04x-7%03x-%04x-%012x" % (  # noqa: UP031 (an f-string takes twice as long)
        millis >> 16,
        millis & 0xFFFF,
        bits >> 62,
        0x8000 | (rand_b >> 48),
        rand_b & 0xFFFFFFFFFFFF,
    )


MAX_DERIVED_EVENTS = 256  # events of one record with ids derived from its id (two hex digits)


def event_id(record_id: str, index: int) -> str:
    """The id of the `index`th tool call or result held in the record `record_id` (trail.linked):
    the record's id as a UUIDv8 (RFC 9562's vendor-specific version) with `index` in the two
    high hex digits of rand_a. No record id (version 7) can equal it; the ids of two records of
    one process differ outside those digits (in one millisecond their counters differ by far less
    than 2^66, so in the low 66 bits the event id keeps), and those of two processes in their 66
    other random bits. It sorts after its record (and the record's other events in order), and
    costs a slice where a new id cost ~14k instructions. Past `MAX_DERIVED_EVENTS` events in one
    record, a new record id."""
    if 0 <= index < MAX_DERIVED_EVENTS and len(record_id) == 36 and record_id[14] == "7":
        return f"{record_id[:14]}8{index:02x}{record_id[17:]}"
    return new_record_id()
