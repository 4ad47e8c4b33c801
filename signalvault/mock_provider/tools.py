"""When the mock answers with tool calls, and what it says once tool results come back.

A request that offers tools (`tools`) and whose last user text holds `[[mock:tool=NAME]]` or
`[[mock:tool=NAME {"json": "arguments"}]]` (one marker per call) gets those calls back; a
request ending in tool results gets a text reply quoting them ("Tool results: ..."), so a test
sees exactly what reached the model. `[[mock:tool_loop]]` in the user text makes every answer a
tool call again (a runaway agent). Imports only mock_provider.turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

JSON = dict[str, Any]

_TOOL_MARKER = re.compile(r"\[\[mock:tool=([A-Za-z0-9_.:-]+)(?:\s+(\{.*?\}))?\]\]", re.DOTALL)
_LOOP_MARKER = "[[mock:tool_loop]]"


@dataclass(frozen=True, slots=True)
class MockToolCall:
    """One call the mock's model asks for: `arguments` is the JSON text of its input."""

    call_id: str
    name: str
    arguments: str

    @property
    def input(self) -> Any:
        return orjson.loads(self.arguments)


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """What a request with tools gets: calls to make, or a reply quoting the tool results."""

    calls: tuple[MockToolCall, ...] = ()
    results_reply: str | None = None


def plan_tools(kind: str, request: JSON, user_text: str, seq: int) -> ToolPlan | None:
    """The tool behaviour for this request, or None when it is an ordinary text turn."""
    results = _trailing_results(kind, request)
    is_loop = _LOOP_MARKER in user_text
    if results and not is_loop:
        return ToolPlan(results_reply="Tool results: " + " | ".join(results))
    if not request.get("tools"):
        return None
    markers = _TOOL_MARKER.findall(user_text)
    if not markers and is_loop:
        markers = [(_first_tool_name(request.get("tools")), "")]
    if not markers:
        return None
    calls = []
    for number, (name, raw) in enumerate(markers):
        arguments = raw or "{}"
        try:
            orjson.loads(arguments)
        except orjson.JSONDecodeError:
            arguments = orjson.dumps({"text": raw}).decode()
        prefix = "toolu_mock" if kind == "messages" else "call_mock"
        calls.append(MockToolCall(f"{prefix}{seq:06d}_{number}", name, arguments))
    return ToolPlan(calls=tuple(calls))


def _first_tool_name(tools: Any) -> str:
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict):
            function = tool.get("function")
            name = function.get("name") if isinstance(function, dict) else tool.get("name")
            if isinstance(name, str):
                return name
    return "tool"


def _trailing_results(kind: str, request: JSON) -> list[str]:
    """The texts of the tool results the conversation ends with (none: it ends otherwise)."""
    if kind == "responses":
        items = request.get("input")
        found = []
        for item in reversed(items if isinstance(items, list) else []):
            if not (isinstance(item, dict) and item.get("type") == "function_call_output"):
                break
            found.append(_text(item.get("output")))
        return found[::-1]
    messages = request.get("messages")
    messages = messages if isinstance(messages, list) else []
    if kind == "chat":
        found = []
        for message in reversed(messages):
            if not (isinstance(message, dict) and message.get("role") == "tool"):
                break
            found.append(_text(message.get("content")))
        return found[::-1]
    last = messages[-1] if messages else None
    if not (isinstance(last, dict) and last.get("role") == "user"):
        return []
    content = last.get("content")
    blocks: list[Any] = content if isinstance(content, list) else []
    return [
        _text(block.get("content"))
        for block in blocks
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_text(part) for part in value)
    if isinstance(value, dict):
        return _text(value.get("text", ""))
    return ""


def argument_pieces(arguments: str, chunks: int) -> list[str]:
    """A call's JSON text cut into up to `chunks` pieces, as providers stream it."""
    count, size = max(1, min(chunks, len(arguments))), len(arguments)
    return [arguments[i * size // count : (i + 1) * size // count] for i in range(count)]
