"""What the mock says back: the reply to one request, its stream pieces and its usage.

Shared by openai_wire and anthropic_wire; knows nothing about HTTP.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import orjson

from signalvault.mock_provider.tools import MockToolCall

JSON = dict[str, Any]

# Lets a test choose the provider's answer, e.g. a secret the gateway must catch in the output.
_REPLY_MARKER = re.compile(r"\[\[mock:reply=(.*?)\]\]", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Turn:
    """One answer to one model request.

    Usage is approximate on purpose: prompt tokens = len(request body) // 4 (at least 1),
    completion tokens = number of whitespace-separated words in the reply.
    """

    seq: int
    model: str
    created: int
    reply: str
    chunks: int
    prompt_tokens: int
    completion_tokens: int
    tool_calls: tuple[MockToolCall, ...] = ()  # when set, the answer asks for these tools

    @property
    def pieces(self) -> list[str]:
        """The reply split into `chunks` roughly equal pieces (fewer if the reply is shorter)."""
        count, size = max(1, min(self.chunks, len(self.reply))), len(self.reply)
        return [self.reply[i * size // count : (i + 1) * size // count] for i in range(count)]


def compose_turn(
    seq: int,
    model: str,
    body: bytes,
    user_text: str,
    chunks: int,
    *,
    reply: str | None = None,
    tool_calls: tuple[MockToolCall, ...] = (),
) -> Turn:
    """Echo `user_text` as "You said: ...", or answer the `[[mock:reply=...]]` text exactly
    (or `reply`, or nothing but `tool_calls`)."""
    if reply is None:
        marker = _REPLY_MARKER.search(user_text)
        reply = marker.group(1) if marker else f"You said: {user_text}"
    if tool_calls:
        reply = ""
    return Turn(
        seq=seq,
        model=model,
        created=int(time.time()),
        reply=reply,
        chunks=chunks,
        prompt_tokens=max(1, len(body) // 4),
        completion_tokens=len(reply.split()) + sum(len(c.arguments) // 4 + 1 for c in tool_calls),
        tool_calls=tool_calls,
    )


def last_user_text(messages: Any) -> str:
    """Text of the last user message in a chat / messages list, or of a Responses `input`."""
    if isinstance(messages, str):
        return messages
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            # Content-block lists: keep text parts (text / input_text), skip images, tool results.
            parts = content if isinstance(content, list) else []
            texts = [
                p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
            ]
            return " ".join(texts)
    return ""


def missing_field(kind: str, request: JSON) -> str | None:
    """Why a real provider would answer 400 to this request body, or None."""
    if not isinstance(request.get("model"), str):
        return "model: a model name is required"
    messages = request.get("messages")
    if kind in ("chat", "messages") and not (isinstance(messages, list) and messages):
        return "messages: a non-empty list is required"
    if kind == "messages" and not isinstance(request.get("max_tokens"), int):
        return "max_tokens: field required"
    if kind == "embeddings":
        inputs, dim = request.get("input"), request.get("dimensions")
        if not (isinstance(inputs, str) or (isinstance(inputs, list) and inputs)):
            return "input: a string or a non-empty list is required"
        if dim is not None and not (isinstance(dim, int) and 1 <= dim <= 4096):
            return "dimensions: an integer between 1 and 4096 is required"
    return None


def data_event(payload: JSON) -> bytes:
    """An unnamed SSE event, as OpenAI Chat Completions sends them."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def named_event(name: str, payload: JSON) -> bytes:
    """An SSE event with an `event:` line (Anthropic and the Responses API)."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
