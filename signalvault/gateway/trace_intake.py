"""`POST /v1/traces`: OTLP/HTTP spans from agent frameworks (protobuf or JSON, optionally gzip),
for a caller holding a gateway key (SPEC §7b). Parsing and recording are signalvault.agents';
this module is the HTTP edge: key, size, encoding, status codes, errors in the OpenAI shape.
"""

from __future__ import annotations

import zlib

from signalvault.agents.span_ingest import SpanIngest, spans_response
from signalvault.errors import (
    AuthError,
    BadRequest,
    HTTPError,
    MethodNotAllowed,
    PayloadTooLarge,
    StoreError,
    StoreUnavailable,
)
from signalvault.gateway.asgi import Receive, Scope, Send, send_error
from signalvault.gateway.keyring import KeyRing
from signalvault.gateway.request_body import ClientGone, presented_key, read_body
from signalvault.gateway.wire import MAX_ATTRIBUTION

PATH = "/v1/traces"
_ERROR_SHAPE = "chat"  # errors answer in the OpenAI shape


class TraceIntake:
    def __init__(
        self, keyring: KeyRing, ingest: SpanIngest, max_body_bytes: int, body_timeout: float
    ) -> None:
        self._keyring = keyring
        self._ingest = ingest
        self._max_body = max_body_bytes
        self._body_timeout = body_timeout

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]
    ) -> None:
        if scope["method"] != "POST":
            await send_error(
                send, _ERROR_SHAPE, MethodNotAllowed(f"{PATH} accepts POST only."), None
            )
            return
        try:
            key = self._keyring.authenticate(presented_key(headers))
            body = await read_body(receive, headers, self._max_body, self._body_timeout)
            body = self._decoded(body, _header(scope, b"content-encoding"))
            # Loaded with the first spans: protobuf and the OTLP classes hold ~2 MiB.
            from signalvault.agents.otlp import parse

            batch = parse(body, headers.get("content-type", ""))
            session = headers.get("x-signalvault-session")
            user = headers.get("x-signalvault-user")
            await self._ingest.record(
                batch,
                key,
                session[:256] if session else None,
                user[:MAX_ATTRIBUTION] if user else None,
            )
        except ClientGone:
            return
        except (AuthError, HTTPError) as exc:
            await send_error(send, _ERROR_SHAPE, exc, None)
            return
        except StoreError:
            unavailable = StoreUnavailable("The audit store is unavailable; spans were not kept.")
            await send_error(send, _ERROR_SHAPE, unavailable, None)
            return
        is_json = headers.get("content-type", "").lower().startswith("application/json")
        answer = spans_response(is_json, batch.rejected)
        media = b"application/json" if is_json else b"application/x-protobuf"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", media),
                    (b"content-length", str(len(answer)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    def _decoded(self, body: bytes, encoding: str | None) -> bytes:
        """The body, gunzipped within the size limit (a small bomb must not grow unbounded)."""
        if not encoding or encoding.strip().lower() == "identity":
            return body
        if encoding.strip().lower() != "gzip":
            raise BadRequest("Content-Encoding must be gzip or none.")
        inflater = zlib.decompressobj(wbits=31)
        try:
            data = inflater.decompress(body, self._max_body + 1)
        except zlib.error:
            raise BadRequest("The body is not valid gzip.") from None
        if len(data) > self._max_body or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"The decompressed body exceeds {self._max_body} bytes.")
        return data


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
