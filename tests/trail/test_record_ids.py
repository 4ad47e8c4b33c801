"""Audit record ids: RFC 9562 UUIDv7 carrying the creation time, strictly increasing within a
process even within one millisecond and across threads (listings and cursors rely on it)."""

from __future__ import annotations

import threading
import time
import uuid

from signalvault.trail.audit import new_record_id


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
