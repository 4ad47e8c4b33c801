"""Anthropic wire formats: Messages (JSON and SSE), Models and error bodies.

Shapes follow what the official `anthropic` SDK parses; imports only mock_provider.turn.
"""

from __future__ import annotations

import time

from signalvault.mock_provider.tools import argument_pieces
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
        "content": [] if is_start else _content(turn),
        "stop_reason": None if is_start else _stop_reason(turn),
        "stop_sequence": None,
        "usage": usage,
    }


def _content(turn: Turn) -> list[JSON]:
    if turn.tool_calls:
        return [
            {"type": "tool_use", "id": c.call_id, "name": c.name, "input": c.input}
            for c in turn.tool_calls
        ]
    return [{"type": "text", "text": turn.reply}]


def _stop_reason(turn: Turn) -> str:
    return "tool_use" if turn.tool_calls else "end_turn"


def message_events(turn: Turn) -> list[bytes]:
    """message_start, then per content block (the text, or each tool_use) its start, deltas
    (`text_delta` or `input_json_delta`) and stop, message_delta, message_stop."""
    final_delta = {
        "delta": {"stop_reason": _stop_reason(turn), "stop_sequence": None},
        "usage": {"output_tokens": turn.completion_tokens},
    }
    steps: list[tuple[str, JSON]] = [
        ("message_start", {"message": message_body(turn, is_start=True)}),
    ]
    if turn.tool_calls:
        for index, call in enumerate(turn.tool_calls):
            block = {"type": "tool_use", "id": call.call_id, "name": call.name, "input": {}}
            steps.append(("content_block_start", {"index": index, "content_block": block}))
            if index == 0:
                steps.append(("ping", {}))
            steps += [
                (
                    "content_block_delta",
                    {"index": index, "delta": {"type": "input_json_delta", "partial_json": p}},
                )
                for p in argument_pieces(call.arguments, turn.chunks)
            ]
            steps.append(("content_block_stop", {"index": index}))
    else:
        text_block = {"type": "text", "text": ""}
        steps += [
            ("content_block_start", {"index": 0, "content_block": text_block}),
            ("ping", {}),
        ]
        steps += [
            ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}})
            for piece in turn.pieces
        ]
        steps.append(("content_block_stop", {"index": 0}))
    steps += [("message_delta", final_delta), ("message_stop", {})]
    return [named_event(name, {"type": name, **data}) for name, data in steps]
