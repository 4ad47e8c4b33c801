"""StreamGuard: output guardrails on the three SSE formats, fed as byte chunks cut at awkward
places (inside events, inside secrets, inside UTF-8 sequences)."""

from __future__ import annotations

import anthropic
import httpx2
import openai
import orjson
import pytest

from signalvault.errors import GuardrailUnavailable
from signalvault.gateway.sse import EventReader
from signalvault.gateway.stream_guard import StreamGuard
from signalvault.gateway.wire import StreamAssembler
from signalvault.guardrails.engine import Context, Engine, Redactor
from signalvault.guardrails.policy import Policy, Rule
from signalvault.mock_provider.anthropic_wire import message_events
from signalvault.mock_provider.openai_wire import chat_events, responses_events
from signalvault.mock_provider.turn import Turn

# Built from parts so no scanner flags this file; AKIA + 16 upper-case letters/digits.
AWS_KEY = "AKIA" + "QZ7XM4PL" + "R2VN8KD3"
EMPLOYEE_ID = "EMP-" + "123456"

RULES = (
    Rule("secrets", "secrets", "block", ("output",)),
    Rule("pii", "pii", "redact", ("output",), options={"types": ["EMAIL"]}),
    Rule("employee-id", "custom", "redact", options={"patterns": [r"EMP-\d{6}"], "restore": True}),
    Rule("codename", "custom", "log", ("output",), options={"keywords": ["Falcon"]}),
)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(Policy(1, RULES), lambda text, model: len(text))


class Reading:
    """A guard with a reader in front, as the relay has it (its StreamAssembler): bytes in."""

    def __init__(self, guard: StreamGuard, api: str) -> None:
        self.guard, self.reader = guard, EventReader(api)

    def feed(self, chunk: bytes) -> bytes:
        return self.guard.feed(chunk, self.reader.feed(chunk))

    def finish(self) -> bytes:
        return self.guard.finish(self.reader.rest())

    def bypass(self) -> bytes:
        return self.guard.bypass(self.reader.pending())

    def __getattr__(self, name: str):
        return getattr(self.guard, name)


def guard(engine, api, redactor=None, holdback=256):
    return Reading(
        StreamGuard(api, engine, Context(model="m"), redactor or Redactor(), holdback), api
    )


def chat(pieces, *, crlf=False):
    sep = b"\r\n\r\n" if crlf else b"\n\n"
    head = {"id": "c1", "object": "chat.completion.chunk", "model": "m"}
    deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in pieces]
    events = [
        {**head, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}]}
        for d in deltas
    ]
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return b"".join(b"data: " + orjson.dumps(e) + sep for e in events) + b"data: [DONE]" + sep


def named(name, payload):
    return (
        b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **payload}) + b"\n\n"
    )


def messages(pieces, *, ping_after=None, kind="text_delta", field="text"):
    events = [
        named("message_start", {"message": {"id": "msg_1", "model": "m", "content": []}}),
        named("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ]
    for n, piece in enumerate(pieces):
        delta = {"type": kind, field: piece}
        events.append(named("content_block_delta", {"index": 0, "delta": delta}))
        if n == ping_after:
            events.append(named("ping", {}))
    events += [
        named("content_block_stop", {"index": 0}),
        named(
            "message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}}
        ),
        named("message_stop", {}),
    ]
    return b"".join(events)


def turn(reply, chunks):
    return Turn(seq=1, model="m", created=0, reply=reply, chunks=chunks, prompt_tokens=3,
                completion_tokens=len(reply.split()))  # fmt: skip


def cut(data, size):
    return [data[i : i + size] for i in range(0, len(data), size)]


def run(g, chunks):
    """Every chunk through the guard; returns what went out after each feed, then finish()."""
    outs = [g.feed(chunk) for chunk in chunks]
    outs.append(g.finish())
    return outs


def assembled(api, data):
    assembler = StreamAssembler(api)
    assembler.feed(data)
    return "".join(assembler.text)


def payloads(api, data):
    return [e.data for e in EventReader(api).feed(data)]


def fragments(value, size=8):
    return [value[i : i + size] for i in range(len(value) - size + 1)]


@pytest.mark.parametrize("size", [1, 5, 17, 64, 333])
@pytest.mark.parametrize("api", ["chat", "messages", "responses"])
def test_blocks_secret_split_across_events_before_any_part_is_sent(engine, api, size):
    prefix = "The build log says the deploy used credentials. " * 12  # longer than the holdback
    pieces = [prefix[i : i + 40] for i in range(0, len(prefix), 40)]
    pieces += ["Your key: " + AWS_KEY[:3], AWS_KEY[3:14], AWS_KEY[14:]]
    pieces.append(" — keep it safe.")
    assert "".join(pieces).count(AWS_KEY) == 1
    stream = {"chat": chat, "messages": messages, "responses": responses_stream}[api](pieces)
    g = guard(engine, api)
    out = b"".join(run(g, cut(stream, size)))
    assert g.blocked is not None and "AWS_ACCESS_KEY_ID" in g.blocked.kinds
    assert not any(f.encode() in out for f in fragments(AWS_KEY))
    assert prefix[:120] in assembled(api, out)  # text well before the secret was streamed
    last = payloads(api, out)[-1]
    if api == "chat":
        assert last["error"]["code"] == "guardrail_violation" and b"[DONE]" not in out
    elif api == "messages":
        assert last == {"type": "error", "error": {"type": "guardrail_violation",
                                                   "message": g.blocked.message}}  # fmt: skip
    else:
        assert last["type"] == "error" and last["code"] == "guardrail_violation"
        assert last["error"]["code"] == "guardrail_violation"
        assert b"response.completed" not in out
    assert "secrets" in g.blocked.message and AWS_KEY not in g.blocked.message
    assert AWS_KEY[4:12] not in g.stored_text() and "[AWS_ACCESS_KEY_ID_1]" in g.stored_text()
    outcome = {e.rule: (e.outcome, e.kinds) for e in g.evaluations}
    assert outcome["secrets"][0] == "blocked" and outcome["secrets"][1]["AWS_ACCESS_KEY_ID"] == 1
    assert g.feed(chat(["more"])) == b"" and g.finish() == b""


def responses_stream(pieces):
    """A Responses API stream whose deltas are exactly `pieces` (the mock splits evenly)."""
    events = responses_events(turn("".join(pieces), len(pieces)), {})
    out, deltas = [], iter(pieces)
    for raw in events:
        if b"response.output_text.delta" in raw:
            payload = orjson.loads(raw.split(b"data: ", 1)[1])
            payload["delta"] = next(deltas)
            raw = b"event: response.output_text.delta\ndata: " + orjson.dumps(payload) + b"\n\n"
        out.append(raw)
    return b"".join(out)


@pytest.mark.parametrize("size", [3, 11, 4096])
def test_redacts_with_one_placeholder_per_value_across_event_boundaries(engine, size):
    pieces = ["Write to jane.doe@exa", "mple.com or to jane.doe@example.com; bob@", "example.org."]
    g = guard(engine, "chat", holdback=64)
    out = b"".join(run(g, cut(chat(pieces), size)))
    expected = "Write to [EMAIL_1] or to [EMAIL_1]; [EMAIL_2]."
    assert assembled("chat", out) == expected == g.stored_text()
    contents = [p["choices"][0]["delta"].get("content") for p in payloads("chat", out)[1:-2]]
    # The placeholder sits where the value began; its remaining characters left later events.
    assert contents == ["Write to [EMAIL_1]", " or to [EMAIL_1]; [EMAIL_2]", "."]
    assert "example" not in out.decode() and out.endswith(b"data: [DONE]\n\n")
    assert {e.rule: (e.outcome, e.kinds) for e in g.evaluations}["pii"] == (
        "redacted",
        {"EMAIL": 3},
    )


def test_only_changed_events_are_reserialised_and_crlf_is_kept(engine):
    stream = chat(["Hello there, ", "mail jane.doe@example.com please", " thanks"], crlf=True)
    out = b"".join(run(guard(engine, "chat", holdback=16), cut(stream, 9)))
    original, forwarded = stream.split(b"\r\n\r\n"), out.split(b"\r\n\r\n")
    assert len(original) == len(forwarded)
    changed = [i for i, (a, b) in enumerate(zip(original, forwarded, strict=True)) if a != b]
    assert changed == [2]
    assert b"[EMAIL_1]" in forwarded[2] and b"\n\n" not in out


def test_restores_placeholders_for_the_client_but_stores_them(engine):
    redactor = Redactor()
    request = engine.scan([f"my id is {EMPLOYEE_ID}"], "input", Context(), redactor)
    assert request.texts == ["my id is [EMPLOYEE-ID_1]"]
    # The model echoes the placeholder split across events and writes a new id of its own.
    pieces = ["Noted: your id is [EMPLOY", "EE-ID_1]; the new one is EMP-65", "4321."]
    g = guard(engine, "messages", redactor, holdback=32)
    out = b"".join(run(g, cut(messages(pieces), 7)))
    assert (
        assembled("messages", out) == f"Noted: your id is {EMPLOYEE_ID}; the new one is EMP-654321."
    )
    assert g.stored_text() == "Noted: your id is [EMPLOYEE-ID_1]; the new one is [EMPLOYEE-ID_2]."
    assert b"[EMPLOY" not in out


def test_log_rule_passes_bytes_unchanged_and_counts_each_finding_once(engine):
    stream = messages(["Project Fal", "con is on track. ", "Falcon ships in May."], ping_after=0)
    g = guard(engine, "messages", holdback=8)
    outs = run(g, cut(stream, 13))
    assert b"".join(outs) == stream and g.blocked is None
    outcome = {e.rule: (e.outcome, e.kinds, len(e.spans)) for e in g.evaluations}
    assert outcome["codename"] == ("logged", {"CODENAME": 2}, 2)
    assert outcome["secrets"][0] == outcome["pii"][0] == "pass"


def test_events_without_text_pass_at_once_unless_text_before_them_is_held(engine):
    stream = messages(["Hello", " world"], ping_after=0)
    events = [e.raw for e in EventReader("messages").feed(stream)]
    g = guard(engine, "messages", holdback=100)
    first = g.feed(b"".join(events[:2]))
    assert first == b"".join(events[:2])  # message_start, content_block_start: no text held
    assert g.feed(b"".join(events[2:4])) == b""  # "Hello" is held, so is the ping behind it
    rest = g.feed(b"".join(events[4:]))
    assert first + rest == stream  # content_block_stop ends the block: all of it goes, in order


def test_multibyte_text_cut_inside_utf8_sequences(engine):
    pieces = ["Grüße aus Zürich 🌍🌍, ", "écrivez à jane.doe@example.com 日本", "語のテキスト 👋"]
    stream = chat(pieces)
    g = guard(engine, "chat", holdback=10)
    out = b"".join(run(g, cut(stream, 5)))
    assert (
        assembled("chat", out) == "Grüße aus Zürich 🌍🌍, écrivez à [EMAIL_1] 日本語のテキスト 👋"
    )


def test_responses_done_events_repeat_the_redacted_text(engine):
    pieces = ["Contact jane.doe@ex", "ample.com for access."]
    g = guard(engine, "responses", holdback=20)
    out = b"".join(run(g, cut(responses_stream(pieces), 31)))
    text = "Contact [EMAIL_1] for access."
    assert assembled("responses", out) == text
    by_type = {p["type"]: p for p in payloads("responses", out)}
    assert by_type["response.output_text.done"]["text"] == text
    assert by_type["response.content_part.done"]["part"]["text"] == text
    assert by_type["response.output_item.done"]["item"]["content"][0]["text"] == text
    assert by_type["response.completed"]["response"]["output"][0]["content"][0]["text"] == text
    assert b"example" not in out


def test_responses_error_event_continues_the_sequence_numbers(engine):
    g = guard(engine, "responses", holdback=16)
    out = b"".join(run(g, [responses_stream(["key ", AWS_KEY[:9], AWS_KEY[9:] + " ok"])]))
    sent = payloads("responses", out)
    assert [p["sequence_number"] for p in sent] == list(range(len(sent)))
    assert sent[-1]["type"] == "error"


def test_tool_call_arguments_are_screened_as_their_own_text(engine):
    parts = ['{"to": "jane.doe@exa', 'mple.com", "note": "', AWS_KEY[:6], AWS_KEY[6:] + '"}']
    stream = messages(parts, kind="input_json_delta", field="partial_json")
    g = guard(engine, "messages")
    out = b"".join(run(g, cut(stream, 10)))
    assert g.blocked is not None and not any(f.encode() in out for f in fragments(AWS_KEY))
    assert "[AWS_ACCESS_KEY_ID_1]" in g.stored_arguments()[0] and g.stored_text() == ""


def test_chat_tool_arguments_are_redacted_and_restored_as_valid_json(engine):
    redactor = Redactor()
    engine.scan([f"id {EMPLOYEE_ID}"], "input", Context(), redactor)
    head = {"id": "c1", "object": "chat.completion.chunk", "model": "m"}
    parts = ['{"email": "jane.doe@', 'example.com", "id": "[EMPLOYEE-', 'ID_1]"}']
    events = [
        {**head, "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": part}}]}, "finish_reason": None}]}
        for part in parts
    ]  # fmt: skip
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    stream = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    out = b"".join(run(guard(engine, "chat", redactor), cut(stream, 6)))
    assembler = StreamAssembler("chat")
    assembler.feed(out)
    arguments = orjson.loads("".join(assembler.tool_arguments[0]))
    assert arguments == {"email": "[EMAIL_1]", "id": EMPLOYEE_ID}


def test_partial_trailing_event_is_never_forwarded_half(engine):
    stream = chat(["Hello world, this is fine."])
    for size in range(1, len(stream)):
        g = guard(engine, "chat", holdback=0)
        out = g.feed(stream[:size])
        assert out == stream[: len(out)] and (out == b"" or out.endswith(b"\n\n"))


def test_stream_without_text_records_passing_evaluations_and_flushes_a_trailing_event(engine):
    stream = named("message_start", {"message": {"id": "m"}}) + b"event: message_stop\ndata: {}"
    g = guard(engine, "messages")
    assert g.feed(stream) == stream[: stream.index(b"event: message_stop")]
    assert g.finish() == b"event: message_stop\ndata: {}"
    assert {e.outcome for e in g.evaluations} == {"pass"} and len(g.evaluations) == len(RULES)


def test_abort_ends_the_stream_with_a_native_error(engine):
    g = guard(engine, "responses")
    events = [e.raw for e in EventReader("responses").feed(responses_stream(["Hello"]))]
    assert g.feed(b"".join(events[:2])) == b"".join(events[:2])
    error = GuardrailUnavailable("The guardrail engine failed; the request was refused.")
    payload = payloads("responses", g.abort(error))[0]
    assert payload["code"] == payload["error"]["code"] == "guardrail_unavailable"
    assert payload["sequence_number"] == 2 and g.feed(b"data: {}\n\n") == g.abort(error) == b""


def test_bypass_sends_what_is_held_and_then_passes_bytes_through(engine):
    stream = chat(["Hello there, ", "mail jane.doe@example.com please"])
    g = guard(engine, "chat")
    first = g.feed(stream[:-20])
    rest = g.bypass()
    assert first + rest == stream[:-20] and g.feed(stream[-20:]) == stream[-20:]
    assert g.finish() == b"" and g.abort(GuardrailUnavailable("x")) == b""


def test_finding_longer_than_the_holdback_is_still_cut_where_it_reaches_unsent_text(engine):
    """A holdback shorter than a value lets its start out; the rest is replaced, never sent."""
    text = "mail jane.doe@example.com now"
    g = guard(engine, "chat", holdback=4)
    out = b"".join(run(g, [chat([text[i : i + 3] for i in range(0, len(text), 3)])]))
    sent = assembled("chat", out)
    assert sent.endswith("[EMAIL_1] now") and "example.com" not in sent
    assert g.stored_text() == sent


def test_logprobs_are_dropped_from_rewritten_events(engine):
    logprobs = {"content": [{"token": "jane.doe@example.com", "logprob": -0.1}]}
    choice = {"index": 0, "delta": {"content": "jane.doe@example.com"}, "logprobs": logprobs}
    stream = b"data: " + orjson.dumps({"choices": [choice]}) + b"\n\ndata: [DONE]\n\n"
    out = b"".join(run(guard(engine, "chat"), [stream]))
    assert payloads("chat", out)[0]["choices"][0] == {
        "index": 0, "delta": {"content": "[EMAIL_1]"}, "logprobs": None
    }  # fmt: skip


def test_scan_window_stays_bounded_on_long_streams(engine):
    class Counting:
        def __init__(self, inner):
            self.policy, self.inner, self.sizes = inner.policy, inner, []

        def scan(self, segments, *args):
            self.sizes.append(sum(map(len, segments)))
            return self.inner.scan(segments, *args)

    counting = Counting(engine)
    pieces = [f"sentence {n} of a long and harmless answer. " for n in range(400)]
    g = Reading(StreamGuard("chat", counting, Context(), Redactor(), 64), "chat")  # type: ignore[arg-type]
    out = b"".join(run(g, cut(chat(pieces), 200)))
    assert assembled("chat", out) == "".join(pieces)
    assert max(counting.sizes) <= 2 * 64 + 200 + 64 // 4
    assert sum(counting.sizes) < 4 * len("".join(pieces))


def sdk_stream(data):
    def handler(request):
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=data)

    return httpx2.Client(transport=httpx2.MockTransport(handler))


@pytest.mark.parametrize("api", ["chat", "responses", "messages"])
def test_official_sdks_raise_on_the_error_event(engine, api):
    """The bytes a blocked stream ends with make each SDK raise, not end quietly."""
    reply = f"Sure, the key is {AWS_KEY} as requested."
    t = turn(reply, 6)
    raw = {"chat": lambda: chat_events(t, False), "responses": lambda: responses_events(t, {}),
           "messages": lambda: message_events(t)}[api]()  # fmt: skip
    g = guard(engine, api, holdback=32)
    out = b"".join(run(g, [e for event in raw for e in cut(event, 23)]))
    seen: list[object] = []
    if api == "messages":
        client = anthropic.Anthropic(api_key="k", base_url="http://t", http_client=sdk_stream(out))
        with pytest.raises(anthropic.APIStatusError, match="guardrail_violation"):
            seen.extend(client.messages.create(model="m", max_tokens=9, stream=True, messages=[]))
    else:
        client = openai.OpenAI(api_key="k", base_url="http://t/v1", http_client=sdk_stream(out))
        with pytest.raises(openai.APIError, match="blocked by guardrail") as raised:
            if api == "chat":
                seen.extend(client.chat.completions.create(model="m", messages=[], stream=True))
            else:
                seen.extend(client.responses.create(model="m", input="x", stream=True))
        assert raised.value.code == "guardrail_violation"
    assert AWS_KEY[:8] not in str(seen)


def test_the_relay_path_parses_each_event_once_and_screens_as_a_plain_reader(engine, monkeypatch):
    """The assembler reads the stream once and the guard takes its events: the bytes out are
    what the guard sends behind a plain EventReader, and no event's JSON is parsed twice."""
    import orjson

    stream = chat(["Mail ", "bob@", "example.com", " about ", AWS_KEY[:6]], crlf=True)
    alone = b"".join(run(guard(engine, "chat"), cut(stream, 7)))
    parsed: list[bytes] = []
    real_loads = orjson.loads
    # The parser itself is counted: compiled, the gateway's modules call each other directly,
    # past any patch of their own functions (signalvault/compiled.py).
    monkeypatch.setattr(orjson, "loads", lambda data: parsed.append(data) or real_loads(data))
    assembler, shared = StreamAssembler("chat"), guard(engine, "chat").guard
    out = b""
    for chunk in cut(stream, 7):
        out += shared.feed(chunk, assembler.feed(chunk))
    out += shared.finish(assembler.rest())
    assert out == alone and b"[EMAIL_1]" in out and b"bob@" not in out
    events_with_json = stream.count(b"data: {")
    assert len(parsed) == events_with_json  # once each, by the one reader
    assert assembler.is_complete and "".join(assembler.text).startswith("Mail bob@example.com")


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_events_cut_at_either_separator_mixed_in_one_stream(size):
    """LF and CRLF blank lines in one stream, read whole and in pieces: every event once, in
    order (the CRLF search is skipped for the rest of a chunk once it found none)."""
    data = b'data: {"a":1}\n\ndata: {"b":2}\r\n\r\ndata: {"c":3}\n\ndata: {"d":4}\r\n\r\n'
    reader = EventReader("chat")
    events = [e for i in range(0, len(data), size) for e in reader.feed(data[i : i + size])]
    assert [e.data for e in events] == [{"a": 1}, {"b": 2}, {"c": 3}, {"d": 4}]
    assert b"".join(e.raw for e in events) == data
