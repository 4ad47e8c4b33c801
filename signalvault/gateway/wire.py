"""The OpenAI and Anthropic wire formats: native error bodies, attribution, usage, and assembling
a streamed (SSE) response into the object that gets logged."""

from __future__ import annotations

import re
from collections.abc import Container, Iterable
from typing import Any

import orjson

from signalvault.errors import ClassificationNotAllowed, GuardrailBlocked, HTTPError
from signalvault.gateway import safe_json
from signalvault.gateway.sse import Event, EventReader

_OPENAI_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
}
_ANTHROPIC_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
}
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
MAX_ATTRIBUTION = 256
DEFAULT_MAX_EVENT_BYTES = 8 << 20  # the default of a provider's `max_event_bytes`
DEFAULT_MAX_STREAM_BYTES = 64 << 20  # the default of a provider's `max_stream_bytes`
MAX_PROVIDER_MESSAGE = 2000  # characters of a provider's error message kept when rebuilt


def family(api: str) -> str:
    return "anthropic" if api == "messages" else "openai"


def sse_error_event(api: str, error: HTTPError, sequence: int) -> bytes:
    """`error` as one SSE event of the calling API's stream, which its SDK raises as an error;
    `sequence`: the Responses API's last sequence_number sent (-1: none)."""
    body = error_body(api, error)
    if api == "messages":
        return b"event: error\ndata: " + body + b"\n\n"
    if api != "responses":
        return b"data: " + body + b"\n\n"
    # The reference documents flat fields; the live API nests them under "error", which is
    # also what makes the openai SDK raise instead of yielding an event. Send both.
    nested: dict[str, Any] = orjson.loads(body)["error"]
    payload = {"type": "error", "code": error.code, "message": error.message, "param": None,
               "sequence_number": sequence + 1, "error": nested}  # fmt: skip
    return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"


def error_body(api: str, error: HTTPError) -> bytes:
    """The error as the calling SDK expects it."""
    status = error.status_code
    if family(api) == "anthropic":
        if isinstance(error, GuardrailBlocked | ClassificationNotAllowed):
            kind = error.code
        elif status >= 500:
            kind = "api_error"
        else:
            kind = _ANTHROPIC_TYPES.get(status, "invalid_request_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": error.message}})
    if isinstance(error, GuardrailBlocked | ClassificationNotAllowed):
        kind = error.code
    elif status >= 500:
        kind = "server_error"
    else:
        kind = _OPENAI_TYPES.get(status, "invalid_request_error")
    return orjson.dumps(
        {
            "error": {
                "message": error.message,
                "type": kind,
                "param": error.param,
                "code": error.code,
            }
        }
    )


def native_error(api: str, status: int, payload: Any) -> bytes | None:
    """A provider's error answer rebuilt in the caller's shape, or None when it already has it
    (an Anthropic error on an OpenAI route, HTML from a proxy, an empty body: SPEC §3 wants the
    caller's own shape). The provider's message is kept; its status is the caller's."""
    if _is_native_error(api, payload):
        return None
    message = f"The provider answered HTTP {status} without an error the gateway could read."
    inner = payload.get("error") if isinstance(payload, dict) else None
    found = inner.get("message") if isinstance(inner, dict) else None
    if isinstance(found, str) and found:
        message = found[:MAX_PROVIDER_MESSAGE]
    error = HTTPError(message, code=f"provider_{status}")
    error.status_code = status
    return error_body(api, error)


def _is_native_error(api: str, payload: Any) -> bool:
    if not isinstance(payload, dict) or not isinstance(payload.get("error"), dict):
        return False
    inner = payload["error"]
    if family(api) == "anthropic":
        return payload.get("type") == "error" and isinstance(inner.get("type"), str)
    return payload.get("type") != "error" and isinstance(inner.get("message"), str)


def end_user(header: str | None, payload: dict[str, Any]) -> str | None:
    """SPEC §3: X-SignalVault-User, else OpenAI user / safety_identifier, else Anthropic
    metadata.user_id."""
    value: Any = header or payload.get("user") or payload.get("safety_identifier")
    if not value:
        metadata = payload.get("metadata")
        if isinstance(metadata, dict):
            value = metadata.get("user_id")
    if not isinstance(value, str) or not value:
        return None
    return value[:MAX_ATTRIBUTION]


def trace_id(traceparent: str | None) -> str | None:
    if not traceparent:
        return None
    match = _TRACEPARENT.fullmatch(traceparent.strip().lower())
    return match.group(1) if match else None


def usage(api: str, payload: Any) -> tuple[int | None, int | None]:
    """(prompt, completion) tokens from a response object's usage."""
    if not isinstance(payload, dict):
        return None, None
    used = payload.get("usage")
    if not isinstance(used, dict):
        return None, None
    if api in ("messages", "responses"):
        prompt, completion = used.get("input_tokens"), used.get("output_tokens")
        if api == "messages":  # input tokens are split three ways; a non-number counts 0
            names = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
            prompt = sum(n for n in (used.get(name) for name in names) if isinstance(n, int))
    else:
        prompt, completion = used.get("prompt_tokens"), used.get("completion_tokens")
    return (
        prompt if isinstance(prompt, int) else None,
        completion if isinstance(completion, int) else None,
    )


def prompt_text(payload: dict[str, Any]) -> str:
    """Every piece of text a request sends, for token estimates (and guardrail scans)."""
    parts: list[str] = []
    _collect(payload.get("system"), parts)
    _collect(payload.get("instructions"), parts)
    _collect(payload.get("messages"), parts)
    _collect(payload.get("input"), parts)
    _collect(payload.get("prompt"), parts)
    return "\n".join(parts)


def _collect(value: Any, parts: list[str]) -> None:
    if isinstance(value, str):
        parts.append(value)
    elif isinstance(value, list):
        for item in value:
            _collect(item, parts)
    elif isinstance(value, dict):
        for name in ("content", "text", "input", "output", "arguments"):
            if name in value:
                _collect(value[name], parts)


class StreamAssembler:
    """Reads an SSE byte stream as it passes and rebuilds the response it carries."""

    def __init__(
        self,
        api: str,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES,
    ) -> None:
        self.api = api
        self._left = max_stream_bytes  # bytes the stream may still carry
        # The stream's one reader: the output guardrails take the events it parsed, so each
        # event is cut and parsed once per stream.
        self._reader = EventReader(api, max_event_bytes)
        self.text: list[str] = []
        self.tool_arguments: dict[int, list[str]] = {}
        self.tool_heads: dict[int, tuple[Any, Any]] = {}  # index -> (call id, tool name)
        self.model: str | None = None
        self.finish_reason: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.is_complete = False
        # An event whose data is not JSON the gateway can read, one longer than
        # `max_event_bytes`, or a stream past `max_stream_bytes` (never buffered whole: the
        # relay cuts the stream before the chunk that broke it).
        self.is_broken = False
        self.error: Any = None
        self.sequence = -1  # the Responses API's last sequence_number read

    def feed(self, chunk: bytes) -> list[Event]:
        """Read a chunk: the whole events it completed, each already taken into the response."""
        if self.is_broken:
            return []
        self._left -= len(chunk)
        if self._left < 0:
            self.is_broken = True
            return []
        events = self._reader.feed(chunk)
        handle = {"messages": self._anthropic, "responses": self._responses}.get(
            self.api, self._chat
        )
        for event in events:
            if event.is_done:
                self.is_complete = True
            elif event.is_invalid:
                # Unreadable for the output guardrails too: the relay cuts the stream here.
                self.is_broken = True
            elif isinstance(event.data, dict):
                handle(event.data)
        if self._reader.too_long:
            self.is_broken = True
        return events

    def pending(self) -> bytes:
        """The bytes of an event not yet whole (left in place)."""
        return self._reader.pending()

    def rest(self) -> Event | None:
        """What is left when the stream ends without a final blank line, as one last event.
        Not taken into the response (an unterminated event is not a complete one)."""
        return self._reader.rest()

    # The event handlers read provider JSON through `_obj`, `_str` and `_at` (or the same checks
    # inline): a field of the wrong type counts as absent (a hostile provider must not crash the
    # logger of record; what the caller receives is the output guardrails' business).

    def _chat(self, event: dict[str, Any]) -> None:
        # The type checks inline on the content delta's way: this runs on every event.
        model = event.get("model")
        if isinstance(model, str) and model:
            self.model = model
        if "error" in event:
            self.error = event["error"]
        choices = event.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                content = delta.get("content")
                if isinstance(content, str) and content:
                    self.text.append(content)
                calls = delta.get("tool_calls")
                if isinstance(calls, list):
                    self._chat_calls(calls)
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                self.finish_reason = reason
        if event.get("usage"):
            self.prompt_tokens, self.completion_tokens = usage("chat", event)

    def _chat_calls(self, calls: list[Any]) -> None:
        for call in calls:
            call = _obj(call)
            function = _obj(call.get("function"))
            arguments = _str(function.get("arguments"))
            if "id" in call or "name" in function:
                self.tool_heads[_at(call.get("index"))] = (call.get("id"), function.get("name"))
            if arguments is not None:
                self.tool_arguments.setdefault(_at(call.get("index")), []).append(arguments)

    def _responses(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if isinstance(event.get("sequence_number"), int):
            self.sequence = event["sequence_number"]
        if kind == "response.output_text.delta" and _str(event.get("delta")):
            self.text.append(event["delta"])
        elif kind == "response.function_call_arguments.delta":
            delta = _str(event.get("delta")) or ""
            self.tool_arguments.setdefault(_at(event.get("output_index")), []).append(delta)
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            response = _obj(event.get("response"))
            self.model = _str(response.get("model")) or self.model
            self.finish_reason = _str(response.get("status"))
            self.prompt_tokens, self.completion_tokens = usage("responses", response)
            self.is_complete = True
        elif kind == "response.output_item.added":
            item = _obj(event.get("item"))
            if item.get("type") == "function_call":
                index = _at(event.get("output_index"))
                self.tool_heads[index] = (item.get("call_id"), item.get("name"))
        elif kind == "response.created":
            self.model = _str(_obj(event.get("response")).get("model")) or self.model
        elif kind == "error":
            self.error = event

    def _anthropic(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = _obj(event.get("delta"))
            if delta.get("type") == "text_delta":
                self.text.append(_str(delta.get("text")) or "")
            elif delta.get("type") == "input_json_delta":
                arguments = _str(delta.get("partial_json")) or ""
                self.tool_arguments.setdefault(_at(event.get("index")), []).append(arguments)
        elif kind == "content_block_start":
            block = _obj(event.get("content_block"))
            if block.get("type") in ("tool_use", "server_tool_use"):
                self.tool_heads[_at(event.get("index"))] = (block.get("id"), block.get("name"))
        elif kind == "message_start":
            message = _obj(event.get("message"))
            self.model = _str(message.get("model")) or self.model
            self.prompt_tokens, self.completion_tokens = usage("messages", message)
        elif kind == "message_delta":
            stop = _str(_obj(event.get("delta")).get("stop_reason"))
            self.finish_reason = stop or self.finish_reason
            used = _obj(event.get("usage"))
            if isinstance(used.get("output_tokens"), int):
                self.completion_tokens = used["output_tokens"]
        elif kind == "message_stop":
            self.is_complete = True
        elif kind == "error":
            self.error = event.get("error")

    def assembled(self) -> bytes:
        """The logged form of the streamed response."""
        result: dict[str, Any] = {
            "model": self.model,
            "content": "".join(self.text),
            "finish_reason": self.finish_reason,
            "complete": self.is_complete,
        }
        if self.tool_arguments:
            result["tool_arguments"] = {
                str(i): "".join(parts) for i, parts in sorted(self.tool_arguments.items())
            }
        if self.error is not None:
            result["error"] = self.error
        return safe_json.dumps(result)


# Keys whose values are structure, identifiers or binary payloads, not text a person wrote.
_NOT_TEXT = frozenset(
    {
        "role", "type", "id", "tool_call_id", "tool_use_id", "call_id", "name", "model",
        "image_url", "source", "data", "file_data", "file_id", "signature", "cache_control",
        "format", "finish_reason", "stop_reason", "stop_sequence", "object", "status",
        "logprobs", "usage", "index", "encoding_format", "detail", "mime_type", "media_type",
    }
)  # fmt: skip
REQUEST_TEXT_FIELDS = ("system", "instructions", "messages", "input", "prompt")
RESPONSE_TEXT_FIELDS = ("choices", "content", "output")

Slot = tuple[Any, Any]  # (container, key): container[key] is a str


def text_slots(payload: dict[str, Any], fields: tuple[str, ...]) -> list[Slot]:
    """Every human-written string under `fields`: message texts and content blocks, system
    prompts, tool arguments and results, Responses input items, embeddings inputs."""
    slots: list[Slot] = []
    _walk(payload, ((name, payload[name]) for name in fields if name in payload), (), slots)
    return slots


def _walk(
    node: Any, items: Iterable[tuple[Any, Any]], skip: Container[Any], slots: list[Slot]
) -> None:
    """The strings among `items` (`node`'s keys or indexes and values) and under them. Strings
    are taken in this loop: a call per string (most of a body's values) cost more than the
    strings' checks."""
    for key, value in items:
        if key in skip:
            continue
        if isinstance(value, str):
            if value:
                slots.append((node, key))
        elif isinstance(value, dict):
            _walk(value, value.items(), _NOT_TEXT, slots)
        elif isinstance(value, list):
            _walk(value, enumerate(value), (), slots)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _at(value: Any) -> int:
    """A choice / output / block index; anything but an int is the first."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
