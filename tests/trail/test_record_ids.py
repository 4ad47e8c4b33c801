"""Audit record ids: RFC 9562 UUIDv7 carrying the creation time, strictly increasing within a
process even within one millisecond and across threads (listings and cursors rely on it)."""

from __future__ import annotations

import threading
import time
import uuid

from signalvault.trail.audit import new_record_id
from signalvault.trail.record_ids import MAX_DERIVED_EVENTS, event_id


def test_ids_are_uuid7_with_the_creation_time() -> None:
    before = time.time_ns() // 1_000_000
    found = uuid.UUID(new_record_id())
    after = time.time_ns() // 1_000_000
    assert found.version == 7 and found.variant == uuid.RFC_4122
    assert before <= found.int >> 80 <= after


def test_ids_strictly_increase_within_a_millisecond_and_across_threads() -> None:
    burst = [new_record_id() for _ in range(5000)]  # many per millisecond
    assert burst == sorted(burst) and len(set(burst)) == len(burst)
    made: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out.extend(new_record_id() for _ in range(5000))

    threads = [threading.Thread(target=make, args=(out,)) for out in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for out in made for i in out]
    assert len(set(every)) == len(every)
    assert all(out == sorted(out) for out in made)
    assert min(every) > burst[-1]


def test_event_ids_derive_from_their_record_and_never_collide() -> None:
    """A held tool event's id names its record: a UUIDv8 that sorts after it, distinct from
    every record id and from the events of other records (even records made in one burst,
    whose ids differ only in their last bits)."""
    records = [new_record_id() for _ in range(2000)]
    events = [event_id(record, index) for record in records for index in range(3)]
    assert len(set(events)) == len(events) and not set(events) & set(records)
    first = uuid.UUID(events[0])
    assert first.version == 8 and first.variant == uuid.RFC_4122
    assert str(first) == events[0]
    assert records[0] < events[0] < events[1] < events[2]
    assert events[1][:14] == records[0][:14] and events[1][17:] == records[0][17:]


def test_event_ids_past_the_derived_range_are_new_ids() -> None:
    record = new_record_id()
    beyond = event_id(record, MAX_DERIVED_EVENTS)
    assert uuid.UUID(beyond).version == 7 and beyond != record
    assert uuid.UUID(event_id(record, MAX_DERIVED_EVENTS - 1)).version == 8
