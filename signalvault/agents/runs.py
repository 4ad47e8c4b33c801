"""Runs as people read them (SPEC §7b): a listing of runs, and one run's events as a tree
(model call -> tool calls -> results -> next model call), for `signalvault traces` and
`/api/traces`. Metadata only; decrypting tool arguments and results is the caller's (audited)
business through `event_content`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, TypedDict

import orjson

from signalvault.console import iso
from signalvault.crypto.envelope import Cipher
from signalvault.store import Store
from signalvault.store.run_queries import RunFilter, list_runs, run_records
from signalvault.trail.audit import INTERACTION, MCP_CALL, TOOL_CALL, TOOL_RESULT, AuditTrail
from signalvault.trail.linked import expand

MODEL_CALL = "model_call"  # an interaction record, as an event of its run
MAX_EVENTS = 5000  # events shown for one run (a runaway run can have many more)
UNANSWERED = "unanswered"  # a tool call no later request answered
_KINDS = {INTERACTION: MODEL_CALL}


class RunSummary(TypedDict):
    id: str
    session: str | None
    trace_id: str | None
    end_user: str | None
    started_at: str | None
    ended_at: str | None
    model_calls: int
    tool_calls: int
    outcome: str


@dataclass(frozen=True, slots=True)
class RunPage:
    # RunSummary plus `project`, `key_id` (for access checks), `blocked` and `flagged` (records
    # blocked; flagged by capture or by a guardrail that logged or redacted) and `cursor`
    runs: list[dict[str, Any]]
    next_cursor: str | None


def runs_page(store: Store, where: RunFilter, limit: int) -> RunPage:
    """Runs newest first; `next_cursor` continues after the last one (None: no more)."""
    rows = list_runs(store.engine, where, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    runs = [
        {
            **summary(row),
            "project": row["project"],
            "key_id": row["key_id"],
            "blocked": int(row["blocked"] or 0),
            "flagged": int(row["flagged"] or 0),
            "cursor": f"{row['started_at']!r}/{row['id']}",
        }
        for row in rows
    ]
    return RunPage(runs, runs[-1]["cursor"] if more and runs else None)


def parse_cursor(cursor: str) -> tuple[float, str]:
    """The (start, run id) a runs cursor names.

    Raises:
        ValueError: not a cursor this module wrote.
    """
    at, _, run_id = cursor.partition("/")
    return float(at), run_id


def summary(row: dict[str, Any]) -> RunSummary:
    if row["blocked"]:
        outcome = "blocked"
    elif row["failed"]:
        outcome = "failed"
    elif row["open"]:
        outcome = "open"
    else:
        outcome = "ok"
    return {
        "id": row["id"],
        "session": row["session"],
        "trace_id": row["trace_id"],
        "end_user": row["end_user"],
        "started_at": iso(row["started_at"]),
        "ended_at": iso(row["ended_at"]),
        "model_calls": int(row["model_calls"] or 0),
        "tool_calls": int(row["tool_calls"] or 0),
        "outcome": outcome,
    }


def run_rows(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The run's records as stored (ciphertext included), oldest first, each followed by the
    tool calls and results it holds as rows of their own (trail.linked); [] if no such run."""
    rows = []
    for row in run_records(store.engine, run_id, MAX_EVENTS):
        rows.append(row)
        rows += expand(row)
    return rows


def run_detail(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of `rows` (one run's records) with its events, each after its parent."""
    aggregate = {
        "id": rows[0]["run_id"],
        "session": next((r["session_id"] for r in rows if r["session_id"]), None),
        "trace_id": next((r["trace_id"] for r in rows if r["trace_id"]), None),
        "end_user": next((r["end_user"] for r in rows if r["end_user"]), None),
        "started_at": min(r["created_at"] for r in rows),
        "ended_at": max(r["completed_at"] or r["created_at"] for r in rows),
        "model_calls": sum(1 for r in rows if r["kind"] == INTERACTION),
        "tool_calls": sum(1 for r in rows if r["kind"] == TOOL_CALL),
        "blocked": sum(1 for r in rows if r["outcome"] == "blocked"),
        "failed": sum(1 for r in rows if r["outcome"] not in ("ok", "unknown")),
        "open": sum(1 for r in rows if r["outcome"] == "unknown"),
    }
    return {**summary(aggregate), "events": events(rows)}


def events(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One event per record, in time order with every event after its parent (a result is
    recorded as its request arrives, a moment after the model call it leads to began), so an
    event outside the chain (an MCP call, a span) sits at its place in time."""
    answered = {r["call_id"] for r in rows if r["kind"] == TOOL_RESULT and r["call_id"]}
    by_id = {r["id"]: r for r in rows}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for row in rows:
        parent = row["parent_id"] if row["parent_id"] in by_id else None
        children.setdefault(parent, []).append(row)
    ordered: list[dict[str, Any]] = []
    # The earliest event whose parent is already listed comes next.
    ready = [(r["created_at"], r["id"], 0) for r in children.get(None, ())]
    heapq.heapify(ready)
    while ready:
        _, record_id, depth = heapq.heappop(ready)
        ordered.append(event(by_id[record_id], depth, answered))
        for child in children.get(record_id, ()):
            heapq.heappush(ready, (child["created_at"], child["id"], depth + 1))
    return ordered


def event(row: dict[str, Any], depth: int, answered: set[str]) -> dict[str, Any]:
    details = orjson.loads(row["details"]) if row.get("details") else {}
    flags = list(details.pop("flags", []))
    if row["kind"] == TOOL_CALL and row["call_id"] not in answered:
        flags.append(UNANSWERED)
    shown = {
        "id": row["id"],
        "type": _KINDS.get(row["kind"], row["kind"]),
        "at": iso(row["created_at"]),
        "parent_id": row["parent_id"],
        "record_id": row.get("record_id", row["id"]),
        "depth": depth,
        "call_id": row["call_id"],
        "tool_name": row["tool_name"],
        "model": row["model_used"] or row["model_requested"],
        "outcome": row["outcome"],
        "flags": flags,
        "guardrails": orjson.loads(row["guardrails"]) if row.get("guardrails") else [],
        "details": details,
        "has_content": row.get("prompt_ct") is not None or row.get("events_ct") is not None,
    }
    if row["kind"] == MCP_CALL:
        shown["mcp"] = mcp_outcome(row)
    return shown


def mcp_outcome(row: dict[str, Any]) -> dict[str, Any]:
    """An MCP call's three outcomes apart: the HTTP status of the exchange, the JSON-RPC error
    (the server's, or the gateway's refusal), and the tool's own `isError`."""
    attempts = orjson.loads(row["attempts"]) if row.get("attempts") else []
    last = attempts[-1] if attempts else {}
    error_code = row.get("error_code")
    return {
        "http_status": row.get("status_code"),
        "jsonrpc_error": last.get("jsonrpc_error"),
        "is_error": last.get("is_error"),
        "error_code": error_code,
    }


def event_content(trail: AuditTrail, row: dict[str, Any], keys: dict[str, Cipher]) -> str | None:
    """The decrypted arguments (tool_call) or result (tool_result) of one event; None for other
    kinds or without content.

    Raises:
        CryptoError: the content was erased (its data key destroyed) or altered.
    """
    if row["kind"] not in (TOOL_CALL, TOOL_RESULT):
        return None
    if "event_index" in row:  # held in a record (trail.linked)
        holder = {k: row[k] for k in ("events_ct", "data_key_id")} | {"id": row["record_id"]}
        contents = trail.decrypt_events(holder, keys)
        return None if contents is None else contents[row["event_index"]]
    if row.get("prompt_ct") is None:
        return None
    content, _ = trail.decrypt(row, keys)
    return None if content is None else content.decode("utf-8", "replace")
