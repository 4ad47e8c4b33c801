"""The mock as a hostile provider: each fault marker breaks the answer the way it says, and
leaves the rest of it as the real API would send it."""

from __future__ import annotations

import orjson
import pytest

from signalvault.mock_provider import MockProvider
from signalvault.mock_provider.faults import read_faults
from signalvault.mock_provider.misbehave import NOT_UTF8
from tests.mock_provider.test_mock_provider import ANTHROPIC_AUTH, call_asgi

pytestmark = pytest.mark.anyio


def chat(text: str, **extra) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def body_of(sent: list[dict]) -> bytes:
    return b"".join(m.get("body", b"") for m in sent[1:])


def headers_of(sent: list[dict]) -> dict[bytes, bytes]:
    return dict(sent[0]["headers"])


async def test_malformed_cuts_a_json_answer_and_one_event_of_a_stream():
    sent, _ = await call_asgi(
        MockProvider(), "POST", "/v1/chat/completions", chat("[[mock:malformed]]")
    )
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body_of(sent))
    assert int(headers_of(sent)[b"content-length"]) == len(body_of(sent))
    sent, _ = await call_asgi(
        MockProvider(), "POST", "/v1/chat/completions", chat("[[mock:malformed]]", stream=True)
    )
    events = [e for e in body_of(sent).split(b"\n\n") if e.startswith(b"data: {")]
    broken = [e for e in events if not _parses(e[6:])]
    assert len(broken) == 1 and body_of(sent).endswith(b"data: [DONE]\n\n")


def _parses(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


async def test_undecodable_bytes_are_split_between_two_writes():
    sent, _ = await call_asgi(
        MockProvider(), "POST", "/v1/chat/completions", chat("x [[mock:undecodable]]", stream=True)
    )
    pieces = [m["body"] for m in sent[1:] if m.get("body")]
    joined = b"".join(pieces)
    assert NOT_UTF8 in joined and not any(NOT_UTF8 in piece for piece in pieces)


async def test_deep_nests_an_extra_field_past_what_json_encoders_write():
    sent, _ = await call_asgi(
        MockProvider(), "POST", "/v1/chat/completions", chat("[[mock:deep=600]]")
    )
    answer = orjson.loads(body_of(sent))  # orjson reads up to 1024 levels
    assert answer["object"] == "chat.completion" and "x_deep" in answer


async def test_content_type_and_chunk_bytes_change_only_the_label_and_the_writes():
    text = "[[mock:content_type=text/html]] [[mock:chunk_bytes=5]]"
    sent, _ = await call_asgi(
        MockProvider(), "POST", "/v1/chat/completions", chat(text, stream=True)
    )
    assert headers_of(sent)[b"content-type"] == b"text/html"
    pieces = [m["body"] for m in sent[1:] if m.get("body")]
    assert all(len(piece) <= 5 for piece in pieces)
    assert b"".join(pieces).endswith(b"data: [DONE]\n\n") and not sent[-1]["more_body"]


async def test_cut_after_ends_a_stream_mid_body():
    sent, _ = await call_asgi(
        MockProvider(), "POST", "/v1/chat/completions", chat("[[mock:cut_after=2]]", stream=True)
    )
    assert body_of(sent).count(b"data: ") == 2 and sent[-1]["more_body"]


async def test_endless_pads_until_the_client_leaves():
    sent, waited = await call_asgi(
        MockProvider(), "POST", "/v1/chat/completions", chat("[[mock:endless]]")
    )
    assert waited and b"content-length" not in headers_of(sent)
    assert all(m.get("more_body") for m in sent[1:])  # never finished


async def test_foreign_error_answers_in_the_other_apis_shape():
    payload = {"model": "claude-haiku-4-5", "max_tokens": 8,
               "messages": [{"role": "user", "content": "[[mock:foreign_error=429]]"}]}  # fmt: skip
    sent, _ = await call_asgi(MockProvider(), "POST", "/v1/messages", payload, ANTHROPIC_AUTH)
    assert sent[0]["status"] == 429
    assert set(orjson.loads(body_of(sent))) == {"error"}  # OpenAI's shape on Anthropic's route
    sent, _ = await call_asgi(
        MockProvider(), "POST", "/v1/chat/completions", chat("[[mock:foreign_error=400]]")
    )
    assert orjson.loads(body_of(sent))["type"] == "error"  # Anthropic's shape on OpenAI's


@pytest.mark.parametrize(
    "marker", ["[[mock:deep=x]]", "[[mock:foreign_error=200]]", "[[mock:chunk_bytes=0]]"]
)
def test_unusable_hostile_markers_are_refused(marker):
    with pytest.raises(ValueError, match="mock marker"):
        read_faults(marker.encode())
