"""Tool calls and tool results as the three APIs carry them (SPEC §7b).

A response asks for tools (OpenAI `tool_calls`, Responses `function_call` items, Anthropic
`tool_use` blocks); a later request answers them (role `tool`, `function_call_output` items,
`tool_result` blocks). This module finds both in parsed JSON and names the containers that hold
their text, so guardrail findings can be attributed to one call or result. Knows no HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

MAX_NAME = 256
MAX_CALL_ID = 128


@dataclass(slots=True)
class ToolCall:
    """One call a model asked for. `arguments` is JSON text (Anthropic's `input` serialised)."""

    call_id: str | None
    name: str | None
    arguments: str
    position: int  # choice/output/content-block index, as stream channels number them
    node: Any = None  # the JSON holding its arguments (None for a streamed call)

    def holders(self) -> frozenset[int]:
        """id() of the containers holding its argument text (for attributing findings)."""
        return frozenset(_ids(self.node))


@dataclass(slots=True)
class ToolResult:
    """One tool result a request sends back, in the message / item / block carrying it."""

    call_id: str | None
    content: str
    node: dict[str, Any] = field(default_factory=dict)

    def holders(self) -> frozenset[int]:
        """id() of the containers holding its text (for attributing findings)."""
        return frozenset(_ids(self.node))


def _list(value: Any) -> list[Any]:
    """`value` when it is a JSON array, else empty: a caller or provider may send anything
    where an array belongs (`"tools": 3`), and that is for the provider to refuse, not a crash."""
    return value if isinstance(value, list) else []


def _clip(value: Any, size: int) -> str | None:
    return value[:size] if isinstance(value, str) and value else None


def _ids(value: Any) -> Iterator[int]:
    """id() of `value` and of every dict and list inside it."""
    if isinstance(value, (dict, list)):
        yield id(value)
        for child in value.values() if isinstance(value, dict) else value:
            yield from _ids(child)


def _text(value: Any) -> str:
    """The text of a result: a string, or the text parts of a content list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(t for t in (_text(part) for part in value) if t)
    if isinstance(value, dict):
        for name in ("text", "content", "output"):
            if name in value:
                return _text(value[name])
    return ""


def offered_tools(tools: list[Any]) -> list[str]:
    """Names of the tools a request offers the model (every API: `tools`)."""
    names = []
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        function = tool.get("function")
        name = function.get("name") if isinstance(function, dict) else tool.get("name")
        if not isinstance(name, str):
            name = tool.get("type")  # built-in tools (web_search, computer, ...) by type
        if isinstance(name, str) and name:
            names.append(name[:MAX_NAME])
    return names


def calls_in_response(api: str, payload: Any) -> list[ToolCall]:
    """Every tool call in a complete (JSON) response."""
    if not isinstance(payload, dict):
        return []
    calls: list[ToolCall] = []
    if api == "chat":
        for choice in _list(payload.get("choices")):
            message = choice.get("message") if isinstance(choice, dict) else None
            found = message.get("tool_calls") if isinstance(message, dict) else None
            if not isinstance(found, list):
                continue  # most answers ask for no tool
            for call in found:
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict):
                    continue
                arguments = function.get("arguments")
                calls.append(
                    ToolCall(
                        _clip(call.get("id"), MAX_CALL_ID),
                        _clip(function.get("name"), MAX_NAME),
                        arguments if isinstance(arguments, str) else "",
                        len(calls),
                        function,
                    )
                )
    elif api == "responses":
        for index, item in enumerate(_list(payload.get("output"))):
            if isinstance(item, dict) and item.get("type") == "function_call":
                arguments = item.get("arguments")
                calls.append(
                    ToolCall(
                        _clip(item.get("call_id"), MAX_CALL_ID),
                        _clip(item.get("name"), MAX_NAME),
                        arguments if isinstance(arguments, str) else "",
                        index,
                        item,
                    )
                )
    elif api == "messages":
        for index, block in enumerate(_list(payload.get("content"))):
            if isinstance(block, dict) and block.get("type") in ("tool_use", "server_tool_use"):
                calls.append(
                    ToolCall(
                        _clip(block.get("id"), MAX_CALL_ID),
                        _clip(block.get("name"), MAX_NAME),
                        orjson.dumps(block.get("input", {})).decode(),
                        index,
                        block,
                    )
                )
    return calls


def results_in_request(api: str, payload: dict[str, Any]) -> list[ToolResult]:
    """Every tool result a request carries, in the order it sends them."""
    results: list[ToolResult] = []
    if api == "responses":
        items = payload.get("input")
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict) and item.get("type") in (
                "function_call_output",
                "custom_tool_call_output",
            ):
                output = item.get("output")
                results.append(
                    ToolResult(
                        _clip(item.get("call_id"), MAX_CALL_ID),
                        _text(output),
                        item,
                    )
                )
        return results
    messages = payload.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if api == "chat" and message.get("role") == "tool":
            results.append(
                ToolResult(
                    _clip(message.get("tool_call_id"), MAX_CALL_ID),
                    _text(content),
                    message,
                )
            )
        elif api == "messages" and message.get("role") == "user" and isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    inner = block.get("content")
                    results.append(
                        ToolResult(
                            _clip(block.get("tool_use_id"), MAX_CALL_ID),
                            _text(inner),
                            block,
                        )
                    )
    return results


def may_carry_results(api: str, payload: dict[str, Any]) -> bool:
    """A cheap first look: could this request hold tool results at all?"""
    if api == "responses":
        return isinstance(payload.get("input"), list)
    return api in ("chat", "messages") and isinstance(payload.get("messages"), list)
