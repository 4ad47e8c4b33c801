"""Anthropic wire formats: Messages (JSON and SSE), Models and error bodies.

Shapes follow what the official `anthropic` SDK parses; imports only mock_provider.turn.
"""

from __future__ import annotations

import time

from signalvault.mock_provider.turn import JSON, Turn, named_event

MODELS = ("claude-haiku-4-5", "claude-sonnet-4-6")
_ERRORS = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str, request_id: str) -> JSON:
    """`{"type": "error", "error": {type, message}}` with the type Anthropic uses for `status`."""
    default = "api_error" if status >= 500 else "invalid_request_error"
    error = {"type": _ERRORS.get(status, default), "message": message}
    return {"type": "error", "error": error, "request_id": request_id}


def models_list(created: int) -> JSON:
    data = [model_entry(name, created) for name in MODELS]
    return {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}


def model_entry(name: str, created: int) -> JSON:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
    return {"type": "model", "id": name, "display_name": name, "created_at": stamp}


def message_body(turn: Turn, *, is_start: bool = False) -> JSON:
    """The `message` object: complete, or as message_start carries it (no content yet)."""
    usage = {
        "input_tokens": turn.prompt_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        # message_start reports the output produced so far, like the real API.
        "output_tokens": min(1, turn.completion_tokens) if is_start else turn.completion_tokens,
        "service_tier": "standard",
    }
    return {
        "id": f"msg_mock{turn.seq:06d}",
        "type": "message",
        "role": "assistant",
        "model": turn.model,
        "content": [] if is_start else [{"type": "text", "text": turn.reply}],
        "stop_reason": None if is_start else "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


def message_events(turn: Turn) -> list[bytes]:
    """message_start, content_block_start, ping, deltas, content_block_stop, message_delta, stop."""
    final_delta = {
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": turn.completion_tokens},
    }
    steps: list[tuple[str, JSON]] = [
        ("message_start", {"message": message_body(turn, is_start=True)}),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("ping", {}),
    ]
    steps += [
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}})
        for piece in turn.pieces
    ]
    steps += [
        ("content_block_stop", {"index": 0}),
        ("message_delta", final_delta),
        ("message_stop", {}),
    ]
    return [named_event(name, {"type": name, **data}) for name, data in steps]
