"""Trace and span ids of records, derived so that every replica and every later reader agrees:
a record's span id is a hash of its id; its trace is the caller's (`traceparent`), else its
run's (all calls of a session share one), else one of its own. The same ids go upstream in the
`traceparent` the gateway sends, so a provider's spans hang under the gateway's."""

from __future__ import annotations

import hashlib
import re

from signalvault.trail.linked import Source

_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_INVALID_TRACE, _INVALID_SPAN = "0" * 32, "0" * 16


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace id, parent span id) of a W3C `traceparent`, or None when absent or malformed."""
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip().lower())
    if match is None or match.group(1) == _INVALID_TRACE or match.group(2) == _INVALID_SPAN:
        return None
    return match.group(1), match.group(2)


def trace_id_of(interaction: Source) -> str:
    """32 hex digits: the caller's trace, else one per run, else one per record."""
    if interaction.trace_id:
        return interaction.trace_id
    if interaction.run_id:
        return hashlib.blake2b(interaction.run_id.encode(), digest_size=16).hexdigest()
    return interaction.id.replace("-", "")


def span_id_of(record_id: str) -> str:
    """16 hex digits: the span of the record `record_id`."""
    return hashlib.blake2b(record_id.encode(), digest_size=8).hexdigest()


def traceparent_of(interaction: Source) -> str:
    """The `traceparent` sent upstream: the record's span, a child of the caller's."""
    return f"00-{trace_id_of(interaction)}-{span_id_of(interaction.id)}-01"
