"""What the data plane accepts: its endpoints, the caller headers it reads, the gateway key a
caller presents, and a request body read within its limits and parsed as one JSON object (within
`safe_json`'s limits, so everything later re-emitted from it can be written)."""

from __future__ import annotations

import asyncio
from typing import Any

from signalvault.errors import BadRequest, PayloadTooLarge, RequestTimeout, UnsupportedMedia
from signalvault.gateway import safe_json
from signalvault.gateway.asgi import Receive

# Request path -> (api name, upstream endpoint after the version segment).
ENDPOINTS = {
    "/v1/chat/completions": ("chat", "/chat/completions"),
    "/v1/responses": ("responses", "/responses"),
    "/v1/embeddings": ("embeddings", "/embeddings"),
    "/v1/messages": ("messages", "/messages"),
}
STREAMING_APIS = frozenset({"chat", "responses", "messages"})
# Headers read from the caller; everything else stays at the gateway.
WANTED_HEADERS = frozenset(
    {
        b"authorization",
        b"x-api-key",
        b"content-type",
        b"content-length",
        b"x-signalvault-user",
        b"x-signalvault-session",
        b"traceparent",
        b"anthropic-version",
        b"anthropic-beta",
    }
)


class ClientGone(Exception):
    """The caller disconnected: while its request body was being read, or before its answer
    could be written (the server's `send` failed)."""


def presented_key(headers: dict[str, str]) -> str | None:
    authorization = headers.get("authorization")
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return headers.get("x-api-key")


async def read_body(
    receive: Receive, headers: dict[str, str], max_bytes: int, timeout_seconds: float
) -> bytes:
    """The whole request body, within `max_bytes` (413) and one deadline (408).

    Raises:
        ClientGone: the caller disconnected first.
    """
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"Request body exceeds the {max_bytes} byte limit.")
    chunks: list[bytes] = []
    size = 0
    try:
        # One deadline for the whole body: a client trickling bytes cannot hold a slot.
        async with asyncio.timeout(timeout_seconds):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"Request body exceeds the {max_bytes} byte limit.")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except TimeoutError:
        raise RequestTimeout(
            f"The request body did not arrive within {timeout_seconds:g} seconds."
        ) from None


def parse_json_body(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """The body as a JSON object.

    Raises:
        UnsupportedMedia: not sent as `application/json` (415).
        BadRequest: not UTF-8, not JSON, nested too deep, or not an object (400).
    """
    return parse_request(body, headers)[0]


def parse_request(body: bytes, headers: dict[str, str]) -> tuple[dict[str, Any], bytes]:
    """The body as a JSON object, and its canonical bytes: what is screened, recorded and
    forwarded, so a provider never reads something else than the guardrails did.

    Raises:
        UnsupportedMedia, BadRequest: as `parse_json_body`.
    """
    content_type = headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise UnsupportedMedia("Send the request body as `Content-Type: application/json`.")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"The request body is not valid UTF-8 (byte {exc.start}).") from None
    try:
        payload, canonical = safe_json.loads_canonical(body, safe_json.REQUEST_DEPTH)
    except safe_json.TooDeep:
        raise BadRequest(
            f"The request body nests arrays and objects more than {safe_json.REQUEST_DEPTH} deep."
        ) from None
    except safe_json.InvalidJSON as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(payload, dict):
        raise BadRequest("The request body must be a JSON object.")
    return payload, canonical
