"""A stored record's metadata as JSON-ready values (CLI `logs --json`, `/api/logs`, exports):
never content, never ciphertext."""

from __future__ import annotations

from typing import Any

import orjson

from signalvault.console import iso
from signalvault.trail.audit import INTERACTION

METADATA_FIELDS = (
    "id",
    "kind",
    "project",
    "key_id",
    "environment",
    "end_user",
    "session_id",
    "trace_id",
    "run_id",
    "parent_id",
    "call_id",
    "tool_name",
    "classification",
    "api",
    "provider",
    "model_requested",
    "model_used",
    "status_code",
    "outcome",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "tokens_estimated",
    "latency_ms",
    "ttfb_ms",
    "policy_version",
    "tool_calls",
)


def record_json(row: dict[str, Any]) -> dict[str, Any]:
    """A stored record's metadata as JSON-ready values: never content, never ciphertext."""
    result: dict[str, Any] = {
        "time": iso(row["created_at"]),
        "completed_at": iso(row.get("completed_at")),
        "stream": bool(row.get("is_stream")),
        "has_content": row.get("prompt_ct") is not None,
    }
    for name in METADATA_FIELDS:
        value = row.get(name)
        if name in ("latency_ms", "ttfb_ms") and value is not None:
            value = round(value, 2)
        result[name] = value
    result["tokens_estimated"] = bool(result["tokens_estimated"])
    result["guardrails"] = orjson.loads(row["guardrails"]) if row.get("guardrails") else []
    result["attempts"] = orjson.loads(row["attempts"]) if row.get("attempts") else []
    # The tool calls and results the record holds (trail.linked): metadata, never content.
    result["events"] = orjson.loads(row["events"]) if row.get("events") else []
    if row.get("kind", INTERACTION) != INTERACTION:
        result["actor"] = row.get("actor")
        result["details"] = orjson.loads(row["details"]) if row.get("details") else {}
    return result
