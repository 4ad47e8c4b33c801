"""A hostile provider's JSON meets the gateway's readers: whatever a (well-formed JSON) answer
or stream event holds, reading it never raises. Events and answers come from the SDKs' own
response types (`shapes.py` walks their pydantic models), broken as request bodies are
(`mutations.py`); each is fed to every reader of provider JSON: the stream assembler (the logged
form of a stream), the output guardrails' event parser, tool-call extraction, usage and the
error rebuilder. No network."""

from __future__ import annotations

from typing import Any

import orjson
from anthropic.types import Message, RawMessageStreamEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent

from signalvault.agents.tool_calls import calls_in_response
from signalvault.gateway.sse import full_text_slots, parse_event
from signalvault.gateway.wire import StreamAssembler, native_error, usage
from tests.hostile.harness import PROFILE
from tests.hostile.mutations import dump, mutated_value
from tests.hostile.shapes import shape_of

SHAPES = {
    "chat": (ChatCompletionChunk, ChatCompletion),
    "responses": (ResponseStreamEvent, Response),
    "messages": (RawMessageStreamEvent, Message),
}
# Generating from the SDKs' large response unions costs more than reading them.
EXAMPLES = {"hostile": 50, "fuzz": 1_500}[PROFILE]


@st.composite
def provider_json(draw: st.DrawFn) -> tuple[str, Any, bool]:
    """(api, a stream event or a whole answer, whether it is an event), mutated or not."""
    api = draw(st.sampled_from(list(SHAPES)))
    is_event = draw(st.booleans())
    value = draw(shape_of(SHAPES[api][0 if is_event else 1]))
    if draw(st.integers(0, 3)):
        value, _ = draw(mutated_value(value, 1, deep=draw(st.booleans())))
    return api, value, is_event


@settings(max_examples=EXAMPLES, derandomize=PROFILE == "hostile", database=None, deadline=None)
@given(provider_json())
def test_no_provider_json_breaks_a_reader(case):
    api, value, is_event = case
    try:
        text = dump(value)
    except TypeError:
        return  # not JSON (a set, say): never comes from a parser
    if is_event:
        raw = b"data: " + text + b"\n\n"
        assembler = StreamAssembler(api)
        assembler.feed(raw)
        logged = orjson.loads(assembler.assembled())
        assert logged["model"] is None or isinstance(logged["model"], str)
        event = parse_event(api, raw)
        assert event.encode() == raw
        full_text_slots(value)
    else:
        calls_in_response(api, value)
        native_error(api, 502, value)
    prompt, completion = usage(api, value)
    assert prompt is None or isinstance(prompt, int)
    assert completion is None or isinstance(completion, int)
