"""The mock provider answers with tool calls when asked, through the official SDKs, JSON and
streamed, on both APIs, and quotes tool results back."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.mock_provider.test_mock_provider import served  # noqa: F401  (module fixture)

ASK = 'weather? [[mock:tool=get_weather {"city": "Oslo"}]] [[mock:tool=get_time]]'
CHAT_TOOLS: list = [
    {"type": "function", "function": {"name": "get_weather"}},
    {"type": "function", "function": {"name": "get_time"}},
]


@pytest.fixture
def oai(served):  # noqa: F811
    with openai.OpenAI(base_url=f"{served[0]}/v1", api_key="k", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(served):  # noqa: F811
    with anthropic.Anthropic(base_url=served[0], api_key="k", max_retries=0) as client:
        yield client


@pytest.mark.parametrize("stream", [False, True])
def test_chat_answers_each_marker_with_a_tool_call(oai, stream):
    messages: list = [{"role": "user", "content": ASK}]
    if stream:
        with oai.chat.completions.stream(
            model="gpt-4o-mini", messages=messages, tools=CHAT_TOOLS
        ) as events:
            message = events.get_final_completion().choices[0].message
    else:
        message = (
            oai.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=CHAT_TOOLS)
            .choices[0]
            .message
        )
    calls = message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("get_weather", '{"city": "Oslo"}'),
        ("get_time", "{}"),
    ]
    assert calls[0].id != calls[1].id


@pytest.mark.parametrize("stream", [False, True])
def test_responses_and_messages_answer_with_function_calls_and_tool_use(oai, claude, stream):
    tools: list = [
        {"type": "function", "name": "get_weather"},
        {"type": "function", "name": "get_time"},
    ]
    if stream:
        with oai.responses.stream(model="gpt-4o", input=ASK, tools=tools) as events:
            response = events.get_final_response()
        with claude.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=50,
            messages=[{"role": "user", "content": ASK}],
            tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
        ) as events:
            message = events.get_final_message()
    else:
        response = oai.responses.create(model="gpt-4o", input=ASK, tools=tools)
        message = claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=50,
            messages=[{"role": "user", "content": ASK}],
            tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
        )
    assert [i.name for i in response.output if i.type == "function_call"] == [
        "get_weather",
        "get_time",
    ]
    uses = [(b.name, b.input) for b in message.content if b.type == "tool_use"]
    assert uses == [("get_weather", {"city": "Oslo"}), ("get_time", {})]
    assert message.stop_reason == "tool_use"


def test_without_tools_offered_the_marker_is_plain_text(oai):
    reply = oai.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": ASK}]
    )
    assert reply.choices[0].message.content == f"You said: {ASK}"


def test_tool_results_are_quoted_back(oai):
    messages: list = [
        {"role": "user", "content": ASK},
        {"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "noon"},
    ]  # fmt: skip
    reply = oai.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=CHAT_TOOLS)
    assert reply.choices[0].message.content == "Tool results: noon"
