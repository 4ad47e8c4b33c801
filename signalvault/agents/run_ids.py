"""Which run a record belongs to (SPEC §7b): the session the caller named, else the W3C trace of
its `traceparent`; a record with neither joins a run only through tool-call ids (runs.py).

Run ids are short and stable: the same session of the same project is one run on every replica.
"""

from __future__ import annotations

import hashlib

SESSION_PREFIX = "s-"
TRACE_PREFIX = "t-"
RECORD_PREFIX = "r-"  # a run started by a model call with neither session nor trace


def run_id_of(project: str | None, session_id: str | None, trace_id: str | None) -> str | None:
    """The run of a record from its session (within its project), else its trace id; None when
    it names neither (it may still join a run through the tool calls it answers)."""
    if session_id:
        # Hashed so the id has a fixed size whatever the caller sent; the session itself is kept
        # in the record's `session_id` column.
        digest = hashlib.blake2b(
            f"{project or ''}\0{session_id}".encode(), digest_size=12
        ).hexdigest()
        return SESSION_PREFIX + digest
    if trace_id:
        return TRACE_PREFIX + trace_id
    return None


def run_of_record(record_id: str) -> str:
    """The run a model call with neither session nor trace starts when it offers tools: the
    calls its answer asks for, and the requests answering them, join it (runs by call ids)."""
    return RECORD_PREFIX + record_id
