"""ASGI plumbing of the data plane: the callable types and the two ways it answers on its own
(a JSON body, an error in the caller's SDK shape). Knows no request semantics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from signalvault.errors import HTTPError
from signalvault.gateway.wire import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def send_json(
    send: Send,
    status: int,
    body: bytes,
    request_id: str | None,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if request_id is not None:
        headers.append((b"x-signalvault-request-id", request_id.encode()))
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, api: str, error: HTTPError, request_id: str | None) -> None:
    extra = []
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        extra.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    await send_json(send, error.status_code, error_body(api, error), request_id, extra)
