"""OpenAI wire formats: Chat Completions, Responses, Embeddings, Models and error bodies.

Shapes follow what the official `openai` SDK parses; imports only mock_provider.turn.
"""

from __future__ import annotations

import base64
import math
import struct

from signalvault.mock_provider.tools import MockToolCall, argument_pieces
from signalvault.mock_provider.turn import JSON, Turn, data_event, named_event

MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "o3-mini", "text-embedding-3-small")
EMBEDDING_DIM = 1536
_ERRORS = {
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "unknown_url"),
    429: ("requests", "rate_limit_exceeded"),
}


def error_body(status: int, message: str) -> JSON:
    """`{"error": {message, type, param, code}}` with the type OpenAI uses for `status`."""
    default = ("server_error", None) if status >= 500 else ("invalid_request_error", None)
    kind, code = _ERRORS.get(status, default)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def models_list(created: int) -> JSON:
    return {"object": "list", "data": [model_entry(name, created) for name in MODELS]}


def model_entry(name: str, created: int) -> JSON:
    return {"id": name, "object": "model", "created": created, "owned_by": "signalvault-mock"}


def unit_vector(dim: int) -> tuple[list[float], str]:
    """A fixed unit-length embedding, as a float list and as base64 little-endian float32."""
    raw = [math.cos(i * 0.618) for i in range(dim)]
    norm = math.sqrt(sum(x * x for x in raw))
    packed = struct.pack(f"<{dim}f", *(x / norm for x in raw))
    # Round-trip through float32 so both encodings carry identical numbers.
    return list(struct.unpack(f"<{dim}f", packed)), base64.b64encode(packed).decode()


def embeddings_body(request: JSON, body: bytes, vector: list[float] | str) -> JSON:
    inputs = request["input"]
    # A list of ints is one tokenised input; a list of strings or token lists is a batch.
    count = len(inputs) if isinstance(inputs, list) and not isinstance(inputs[0], int) else 1
    tokens = max(1, len(body) // 4)
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": vector} for i in range(count)],
        "model": request["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _chat_usage(turn: Turn) -> JSON:
    return {
        "prompt_tokens": turn.prompt_tokens,
        "completion_tokens": turn.completion_tokens,
        "total_tokens": turn.prompt_tokens + turn.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _chat_head(turn: Turn, kind: str) -> JSON:
    return {
        "id": f"chatcmpl-mock{turn.seq:06d}",
        "object": kind,
        "created": turn.created,
        "model": turn.model,
        "service_tier": "default",
        "system_fingerprint": "fp_mock",
    }


def chat_body(turn: Turn) -> JSON:
    message: JSON = {"role": "assistant", "content": turn.reply, "refusal": None, "annotations": []}
    finish = "stop"
    if turn.tool_calls:
        message["content"] = None
        message["tool_calls"] = [
            {"id": c.call_id, "type": "function", "function": _function(c, c.arguments)}
            for c in turn.tool_calls
        ]
        finish = "tool_calls"
    choice: JSON = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    return {**_chat_head(turn, "chat.completion"), "choices": [choice], "usage": _chat_usage(turn)}


def _function(call: MockToolCall, arguments: str) -> JSON:
    return {"name": call.name, "arguments": arguments}


def _chat_tool_deltas(turn: Turn) -> list[JSON]:
    """Per call: a delta naming it with empty arguments, then the arguments in pieces."""
    deltas: list[JSON] = []
    for index, call in enumerate(turn.tool_calls):
        head = {"index": index, "id": call.call_id, "type": "function"}
        deltas.append({"tool_calls": [{**head, "function": _function(call, "")}]})
        deltas += [
            {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            for piece in argument_pieces(call.arguments, turn.chunks)
        ]
    return deltas


def chat_events(turn: Turn, include_usage: bool) -> list[bytes]:
    """Role chunk, one chunk per piece, a finish chunk, the usage chunk if asked, `[DONE]`."""
    head = _chat_head(turn, "chat.completion.chunk")
    if include_usage:
        head["usage"] = None  # like the real API: null on every chunk, then one usage chunk
    deltas: list[JSON] = [{"role": "assistant", "content": "", "refusal": None}]
    if turn.tool_calls:
        deltas[0]["content"] = None
        deltas += _chat_tool_deltas(turn)
    else:
        deltas += [{"content": piece} for piece in turn.pieces]
    choices: list[JSON] = [
        {"index": 0, "delta": d, "logprobs": None, "finish_reason": None} for d in deltas
    ]
    finish = "tool_calls" if turn.tool_calls else "stop"
    choices.append({"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish})
    events = [data_event({**head, "choices": [choice]}) for choice in choices]
    if include_usage:
        events.append(data_event({**head, "choices": [], "usage": _chat_usage(turn)}))
    events.append(b"data: [DONE]\n\n")
    return events


def _text_part(text: str) -> JSON:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _output_message(turn: Turn, status: str, content: list[JSON]) -> JSON:
    item_id = f"msg_mock{turn.seq:06d}"
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _function_call_item(turn: Turn, index: int, status: str, arguments: str) -> JSON:
    call = turn.tool_calls[index]
    return {
        "id": f"fc_mock{turn.seq:06d}_{index}",
        "type": "function_call",
        "status": status,
        "call_id": call.call_id,
        "name": call.name,
        "arguments": arguments,
    }


def _response_output(turn: Turn, status: str) -> list[JSON]:
    if turn.tool_calls:
        return [
            _function_call_item(turn, i, status, call.arguments)
            for i, call in enumerate(turn.tool_calls)
        ]
    return [_output_message(turn, status, [_text_part(turn.reply)])]


def response_object(turn: Turn, request: JSON, status: str) -> JSON:
    """A Responses API `response` object; output and usage only once `completed`."""
    is_done = status == "completed"
    usage = {
        "input_tokens": turn.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": turn.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": turn.prompt_tokens + turn.completion_tokens,
    }
    return {
        "id": f"resp_mock{turn.seq:06d}",
        "object": "response",
        "created_at": turn.created,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "metadata": request.get("metadata") or {},
        "model": turn.model,
        "output": _response_output(turn, status) if is_done else [],
        "parallel_tool_calls": True,
        "previous_response_id": request.get("previous_response_id"),
        "store": request.get("store", True),
        "temperature": request.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": request.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage if is_done else None,
        "user": request.get("user"),
    }


def responses_events(turn: Turn, request: JSON) -> list[bytes]:
    """The Responses event sequence for one text message (or the turn's function calls),
    numbered by `sequence_number`."""
    pending = response_object(turn, request, "in_progress")
    steps: list[tuple[str, JSON]] = [
        ("response.created", {"response": pending}),
        ("response.in_progress", {"response": pending}),
    ]
    steps += _function_call_steps(turn) if turn.tool_calls else _message_steps(turn)
    steps.append(("response.completed", {"response": response_object(turn, request, "completed")}))
    # No `data: [DONE]` here: the Responses stream ends with response.completed.
    return [
        named_event(name, {"type": name, "sequence_number": n, **data})
        for n, (name, data) in enumerate(steps)
    ]


def _function_call_steps(turn: Turn) -> list[tuple[str, JSON]]:
    steps: list[tuple[str, JSON]] = []
    for index, call in enumerate(turn.tool_calls):
        where = {"item_id": f"fc_mock{turn.seq:06d}_{index}", "output_index": index}
        added = _function_call_item(turn, index, "in_progress", "")
        steps.append(("response.output_item.added", {"output_index": index, "item": added}))
        steps += [
            ("response.function_call_arguments.delta", {**where, "delta": piece})
            for piece in argument_pieces(call.arguments, turn.chunks)
        ]
        steps.append(
            ("response.function_call_arguments.done", {**where, "arguments": call.arguments})
        )
        done = _function_call_item(turn, index, "completed", call.arguments)
        steps.append(("response.output_item.done", {"output_index": index, "item": done}))
    return steps


def _message_steps(turn: Turn) -> list[tuple[str, JSON]]:
    where = {"item_id": f"msg_mock{turn.seq:06d}", "output_index": 0, "content_index": 0}
    part = _text_part(turn.reply)
    item_added = {"output_index": 0, "item": _output_message(turn, "in_progress", [])}
    item_done = {"output_index": 0, "item": _output_message(turn, "completed", [part])}
    steps: list[tuple[str, JSON]] = [
        ("response.output_item.added", item_added),
        ("response.content_part.added", {**where, "part": _text_part("")}),
    ]
    steps += [
        ("response.output_text.delta", {**where, "delta": p, "logprobs": []}) for p in turn.pieces
    ]
    steps += [
        ("response.output_text.done", {**where, "text": turn.reply, "logprobs": []}),
        ("response.content_part.done", {**where, "part": part}),
        ("response.output_item.done", item_done),
    ]
    return steps
