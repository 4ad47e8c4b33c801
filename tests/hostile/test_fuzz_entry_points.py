"""Every /v1 entry point fuzzed with bodies shaped like the official SDKs' requests and then
broken (see mutations.py), against one real gateway: no 5xx, healthy throughout, no traceback,
every recorded answer matching its audit record, every forward recorded (see harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from anthropic.types.message_create_params import MessageCreateParamsBase
from hypothesis import strategies as st
from openai.types.chat.completion_create_params import CompletionCreateParamsBase
from openai.types.embedding_create_params import EmbeddingCreateParams
from openai.types.responses.response_create_params import ResponseCreateParamsBase

from tests.hostile.framing import raw_requests
from tests.hostile.harness import GatewayUnderFuzz, HttpRequest, fuzz, gateway_under_fuzz
from tests.hostile.mutations import credentials, extra_headers, json_requests
from tests.hostile.shapes import params

OPENAI_MODELS = st.sampled_from(["gpt-4o-mini"] * 6 + ["text-embedding-3-small", "nope", ""])
CLAUDE_MODELS = st.sampled_from(["claude-haiku-4-5"] * 6 + ["gpt-4o-mini", "nope"])
STREAM = {"stream": st.booleans()}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[GatewayUnderFuzz]:
    with gateway_under_fuzz(tmp_path_factory.mktemp("fuzz")) as running:
        yield running
        print(f"\ngenerated requests per entry point: {dict(running.sent)}")
        running.check_forwards_recorded()


def test_chat_completions_survive_hostile_bodies(gateway):
    bodies = params(CompletionCreateParamsBase, {"model": OPENAI_MODELS}, STREAM)
    fuzz(
        gateway, "/v1/chat/completions", json_requests("/v1/chat/completions", bodies, gateway.key)
    )


def test_responses_survive_hostile_bodies(gateway):
    bodies = params(ResponseCreateParamsBase, {"model": OPENAI_MODELS}, STREAM)
    fuzz(gateway, "/v1/responses", json_requests("/v1/responses", bodies, gateway.key))


def test_embeddings_survive_hostile_bodies(gateway):
    bodies = params(EmbeddingCreateParams, {"model": OPENAI_MODELS})
    fuzz(gateway, "/v1/embeddings", json_requests("/v1/embeddings", bodies, gateway.key))


def test_messages_survive_hostile_bodies(gateway):
    bodies = params(MessageCreateParamsBase, {"model": CLAUDE_MODELS}, STREAM)
    fuzz(gateway, "/v1/messages", json_requests("/v1/messages", bodies, gateway.key))


@st.composite
def model_listings(draw: st.DrawFn, key: str) -> HttpRequest:
    """GET /v1/models (and its neighbours) with odd methods, queries and credentials."""
    path = draw(
        st.sampled_from(["/v1/models"] * 4 + ["/v1/models/gpt-4o-mini", "/v1/", "/v1/chat"])
    )
    query = draw(st.sampled_from(["", "?limit=1", "?" + "a=" * 500, "?%ff%fe=%00"]))
    method = draw(st.sampled_from(["GET"] * 6 + ["POST", "HEAD", "OPTIONS", "DELETE"]))
    headers = draw(credentials(key)) + draw(extra_headers())
    body = draw(st.sampled_from([b"", b"{}", b"\xff"]))
    return HttpRequest(method, path + query, tuple(headers), body, 1, f"{method} {path}{query}")


def test_model_listing_survives_hostile_requests(gateway):
    fuzz(gateway, "/v1/models", model_listings(gateway.key), weight=0.5)


def test_every_entry_point_survives_broken_framing(gateway):
    """Raw bytes on real sockets: what uvicorn, GuardedHttpTools and the gateway make of
    requests no HTTP client would send."""
    fuzz(gateway, "raw framing", raw_requests(gateway.key), weight=0.5)
