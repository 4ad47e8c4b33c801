"""Server-sent events as the three streaming APIs send them: whole events out of a byte stream,
where each event carries generated text, and re-encoding an event whose text was changed.

Imports only gateway.safe_json; knows JSON shapes, not guardrails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from signalvault.gateway import safe_json

# ("t", ...) is generated text, ("a", ...) tool-call arguments (JSON text); the rest of the key
# is the choice / output / content-block position the text belongs to.
ChannelKey = tuple[str | int, ...]


@dataclass(slots=True)
class Piece:
    """`container[key]` is one event's share of the text of `channel`."""

    container: dict[str, Any]
    key: str
    channel: ChannelKey
    owner: dict[str, Any] | None = None  # holds the `logprobs` repeating this text, if any


@dataclass(slots=True)
class Event:
    raw: bytes  # exactly as received, blank-line terminator included
    data: Any  # the parsed JSON payload, or None (`[DONE]`, comments, invalid JSON)
    pieces: list[Piece] = field(default_factory=list)
    closes: list[ChannelKey] = field(default_factory=list)  # channel prefixes this event ends
    is_changed: bool = False
    is_done: bool = False  # `data: [DONE]`: the stream says it is complete
    is_invalid: bool = False  # data that is not JSON the gateway can read

    def encode(self) -> bytes:
        """The original bytes, or the event rebuilt around its re-serialised payload."""
        if not self.is_changed:
            return self.raw
        newline = b"\r\n" if self.raw.endswith(b"\r\n\r\n") else b"\n"
        lines: list[bytes] = []
        for line in self.raw.splitlines():
            if line.startswith(b"data:"):
                if not any(kept.startswith(b"data:") for kept in lines):
                    lines.append(b"data: " + safe_json.dumps(self.data))
            elif line:
                lines.append(line)
        return newline.join(lines) + newline + newline


class EventReader:
    """Cuts a byte stream into whole events; a partial event waits for the rest of its bytes.

    With `max_event_bytes`, an event longer than that (its blank-line terminator aside) is never
    buffered whole: reading stops before it and `too_long` is set.
    """

    def __init__(self, api: str, max_event_bytes: int | None = None) -> None:
        self._api = api
        self._max_event = max_event_bytes
        self._buffer = bytearray()  # appended in place: tiny chunks stay linear
        self.too_long = False

    def feed(self, chunk: bytes) -> list[Event]:
        if self.too_long:
            return []
        # A separator may straddle the previous chunk and this one, but lies no further back.
        search, start, events = max(0, len(self._buffer) - 3), 0, []
        self._buffer += chunk
        buffer, most = self._buffer, self._max_event
        crlf = 0  # -1 once the buffer holds no CRLF separator from `search` on
        while True:
            lf = buffer.find(b"\n\n", search)
            if crlf != -1:  # searched once per event, it read the rest of the chunk each time
                crlf = buffer.find(b"\r\n\r\n", search)
            if crlf != -1 and (lf == -1 or crlf < lf):
                body, end = crlf, crlf + 4
            elif lf != -1:
                body, end = lf, lf + 2
            else:
                break
            if most is not None and body - start > most:
                self.too_long = True
                break
            events.append(parse_event(self._api, bytes(buffer[start:end])))
            start = search = end
        if self.too_long or (most is not None and len(buffer) - start > most):
            self.too_long = True
            buffer.clear()
        else:
            del buffer[:start]
        return events

    def pending(self) -> bytes:
        """The bytes of an event not yet whole, left in place."""
        return bytes(self._buffer)

    def rest(self) -> Event | None:
        """Bytes left when the stream ended without a final blank line, as one last event."""
        raw = bytes(self._buffer)
        self._buffer.clear()
        return parse_event(self._api, raw) if raw.strip() else None


def parse_event(api: str, raw: bytes) -> Event:
    if (
        raw.startswith(b"data:")
        and raw.count(b"\n") == 2
        and raw.endswith(b"\n\n")
        and (b"\r" not in raw)
    ):
        # Nearly every event is one `data:` line and its blank line: the loop's result without
        # the loop (bytes.splitlines breaks at \n and \r alone).
        value = raw[5:-2]
        data = value[1:] if value.startswith(b" ") else value
    else:
        data_lines = []
        for line in raw.splitlines():
            if line.startswith(b"data:"):
                value = line[5:]
                data_lines.append(value[1:] if value.startswith(b" ") else value)
        data = b"\n".join(data_lines)
    bare = data.strip()
    if not bare:  # a comment, a keep-alive, an event with no data
        return Event(raw, None)
    if bare == b"[DONE]":
        return Event(raw, None, is_done=True)
    try:
        payload = safe_json.loads(data)
    except safe_json.InvalidJSON:
        return Event(raw, None, is_invalid=True)
    event = Event(raw, payload)
    if isinstance(payload, dict):
        _READERS.get(api, _chat)(payload, event)
    return event


def _list(value: Any) -> list[Any]:
    """A JSON array, or empty for anything else a provider put there."""
    return value if isinstance(value, list) else []


def _index(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _add(event: Event, container: Any, key: str, channel: ChannelKey, owner: Any = None) -> None:
    # Empty strings (the role chunk's "") carry nothing to screen: the event passes at once.
    if isinstance(container, dict) and isinstance(container.get(key), str) and container[key]:
        event.pieces.append(Piece(container, key, channel, owner))


def _chat(data: dict[str, Any], event: Event) -> None:
    # `_list`, `_index` and `_add` inline for the content delta: this runs on every event.
    choices = data.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, dict):
            continue
        index = choice.get("index")
        if not isinstance(index, int):
            index = 0
        delta = choice.get("delta")
        if isinstance(delta, dict):
            content = delta.get("content")
            if isinstance(content, str) and content:
                event.pieces.append(Piece(delta, "content", ("t", index), choice))
            for call in _list(delta.get("tool_calls")):
                if isinstance(call, dict):
                    channel = ("a", index, _index(call.get("index")))
                    _add(event, call.get("function"), "arguments", channel)
        if choice.get("finish_reason"):
            event.closes += [("t", index), ("a", index)]


def _responses(data: dict[str, Any], event: Event) -> None:
    kind = data.get("type")
    output, content = _index(data.get("output_index")), _index(data.get("content_index"))
    if kind == "response.output_text.delta":
        _add(event, data, "delta", ("t", output, content), data)
    elif kind == "response.function_call_arguments.delta":
        _add(event, data, "delta", ("a", output))
    elif kind == "response.output_text.done":
        event.closes.append(("t", output, content))
    elif kind == "response.function_call_arguments.done":
        event.closes.append(("a", output))


def _anthropic(data: dict[str, Any], event: Event) -> None:
    kind, index = data.get("type"), _index(data.get("index"))
    if kind == "content_block_delta":
        delta = data.get("delta")
        kind = delta.get("type") if isinstance(delta, dict) else None
        if kind == "text_delta":
            _add(event, delta, "text", ("t", index))
        elif kind == "input_json_delta":
            _add(event, delta, "partial_json", ("a", index))
    elif kind == "content_block_stop":
        event.closes += [("t", index), ("a", index)]


# The reader of each API's events (chat completions: `_chat`), looked up once per event.
_READERS = {"messages": _anthropic, "responses": _responses}


def full_text_slots(data: Any) -> list[tuple[dict[str, Any], str, ChannelKey]]:
    """Where a Responses API event repeats a whole text (the `.done` events, response.completed):
    (container, key, channel) for each, so a rewrite of the deltas can be applied to them too."""
    if not isinstance(data, dict):
        return []
    kind = data.get("type")
    output, content = _index(data.get("output_index")), _index(data.get("content_index"))
    if kind == "response.output_text.done":
        return [(data, "text", ("t", output, content))]
    if kind == "response.function_call_arguments.done":
        return [(data, "arguments", ("a", output))]
    if kind == "response.content_part.done":
        part = data.get("part")
        if isinstance(part, dict) and part.get("type") == "output_text":
            return [(part, "text", ("t", output, content))]
        return []
    if kind == "response.output_item.done":
        return _item_slots(data.get("item"), output)
    response = data.get("response")
    if isinstance(response, dict) and isinstance(response.get("output"), list):
        return [s for i, item in enumerate(response["output"]) for s in _item_slots(item, i)]
    return []


def _item_slots(item: Any, output: int) -> list[tuple[dict[str, Any], str, ChannelKey]]:
    if not isinstance(item, dict):
        return []
    if item.get("type") == "function_call" and isinstance(item.get("arguments"), str):
        return [(item, "arguments", ("a", output))]
    slots: list[tuple[dict[str, Any], str, ChannelKey]] = []
    for index, part in enumerate(_list(item.get("content"))):
        is_text = isinstance(part, dict) and part.get("type") == "output_text"
        if is_text and isinstance(part.get("text"), str):
            slots.append((part, "text", ("t", output, index)))
    return slots
