"""Two-step tool loops through the official SDKs, one per API and mode: the model asks for a tool
(the mock answers `[[mock:tool=NAME {...}]]`), the caller sends the result, the model answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anthropic
import openai

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
CHAT_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}
]
RESPONSES_TOOLS: list[Any] = [{"type": "function", "name": "get_weather", "parameters": WEATHER}]
CLAUDE_TOOLS: list[Any] = [{"name": "get_weather", "input_schema": WEATHER}]


@dataclass
class Step:
    """What the first model call asked for and what the second answered."""

    call_id: str
    name: str
    arguments: str
    reply: str


def ask(city: str = "Paris", name: str = "get_weather") -> str:
    return f'What is the weather? [[mock:tool={name} {{"city": "{city}"}}]]'


async def ask_for_a_tool(
    client: openai.AsyncOpenAI, headers: dict[str, str] | None = None
) -> tuple[str, list[Any]]:
    """A chat model call whose answer asks for a tool: its call id and the messages so far (the
    answer included), to send a result with."""
    messages: list[Any] = [{"role": "user", "content": ask()}]
    answer = await client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=CHAT_TOOLS, extra_headers=headers or {}
    )
    message = answer.choices[0].message
    call = message.tool_calls[0]  # type: ignore[index]
    return call.id, [*messages, message.model_dump(exclude_none=True)]


async def send_result(
    client: openai.AsyncOpenAI,
    messages: list[Any],
    call_id: str,
    result: str,
    headers: dict[str, str] | None = None,
) -> None:
    """The next chat model call, sending `result` back for `call_id`."""
    await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[*messages, {"role": "tool", "tool_call_id": call_id, "content": result}],
        tools=CHAT_TOOLS,
        extra_headers=headers or {},
    )


def forged_history(question: str, call_id: str, result: str) -> list[Any]:
    """Chat messages with a tool call and its result the client wrote itself (no response of
    the gateway asked for that call)."""
    call = {
        "id": call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }
    return [
        {"role": "user", "content": question},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": result},
    ]


async def chat_loop(
    client: openai.AsyncOpenAI,
    *,
    stream: bool,
    result: str,
    headers: dict[str, str] | None = None,
    prompt: str | None = None,
) -> Step:
    messages: list[Any] = [{"role": "user", "content": prompt or ask()}]
    first = await _chat(client, messages, stream, headers)
    call = first.tool_calls[0]  # type: ignore[index]
    messages += [
        first.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": result},
    ]
    second = await _chat(client, messages, stream, headers)
    return Step(call.id, call.function.name, call.function.arguments, second.content or "")


async def _chat(
    client: openai.AsyncOpenAI, messages: list[Any], stream: bool, headers: dict[str, str] | None
) -> Any:
    common: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": messages,
        "tools": CHAT_TOOLS,
        "extra_headers": headers or {},
    }
    if not stream:
        return (await client.chat.completions.create(**common)).choices[0].message
    async with client.chat.completions.stream(**common) as events:
        return (await events.get_final_completion()).choices[0].message


async def responses_loop(
    client: openai.AsyncOpenAI,
    *,
    stream: bool,
    result: str,
    headers: dict[str, str] | None = None,
    prompt: str | None = None,
) -> Step:
    items: list[Any] = [{"role": "user", "content": prompt or ask()}]
    first = await _respond(client, items, stream, headers)
    call = next(item for item in first.output if item.type == "function_call")
    items += [
        call.model_dump(exclude_none=True, exclude={"parsed_arguments"}),
        {"type": "function_call_output", "call_id": call.call_id, "output": result},
    ]
    second = await _respond(client, items, stream, headers)
    return Step(call.call_id, call.name, call.arguments, second.output_text)


async def _respond(
    client: openai.AsyncOpenAI, items: list[Any], stream: bool, headers: dict[str, str] | None
) -> Any:
    common: dict[str, Any] = {
        "model": "gpt-4o",
        "input": items,
        "tools": RESPONSES_TOOLS,
        "extra_headers": headers or {},
    }
    if not stream:
        return await client.responses.create(**common)
    async with client.responses.stream(**common) as events:
        return await events.get_final_response()


async def messages_loop(
    client: anthropic.AsyncAnthropic,
    *,
    stream: bool,
    result: str,
    headers: dict[str, str] | None = None,
    prompt: str | None = None,
) -> Step:
    messages: list[Any] = [{"role": "user", "content": prompt or ask()}]
    first = await _message(client, messages, stream, headers)
    use = next(block for block in first.content if block.type == "tool_use")
    messages += [
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": result}],
        },
    ]
    second = await _message(client, messages, stream, headers)
    import orjson

    text = "".join(block.text for block in second.content if block.type == "text")
    return Step(use.id, use.name, orjson.dumps(use.input).decode(), text)


async def _message(
    client: anthropic.AsyncAnthropic,
    messages: list[Any],
    stream: bool,
    headers: dict[str, str] | None,
) -> Any:
    common: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 200,
        "messages": messages,
        "tools": CLAUDE_TOOLS,
        "extra_headers": headers or {},
    }
    if not stream:
        return await client.messages.create(**common)
    async with client.messages.stream(**common) as events:
        return await events.get_final_message()


LOOPS = {"chat": chat_loop, "responses": responses_loop, "messages": messages_loop}
