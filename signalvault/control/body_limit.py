"""The request-body bound of the control plane (admin API and dashboard), as the data plane has
its own (`gateway/request_body.py`): `[server] max_body_bytes`, whether the body announces its
length or arrives chunked. Without it a chunked body was read whole, however large (the admin
API's JSON) or up to 200 fields of 1 MB each (the dashboard's forms)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from signalvault.errors import PayloadTooLarge

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


class BodyTooLarge(PayloadTooLarge, HTTPException):
    """413 as both apps answer an HTTPError, and a Starlette HTTPException so that FastAPI's
    body parsing passes it on instead of turning it into "error parsing the body" (400)."""

    def __init__(self, limit: int) -> None:
        message = f"The request body exceeds {limit} bytes."
        HTTPException.__init__(self, PayloadTooLarge.status_code, message)
        self.message, self.param = message, None


async def within(
    app: App, limit: int, scope: MutableMapping[str, Any], receive: Receive, send: Send
) -> None:
    """Run `app` with a `receive` that raises BodyTooLarge (413 in the app's own shape) once
    the body passes `limit` bytes: at once for a `Content-Length` over it, else as soon as the
    bytes read do."""
    announced = _content_length(scope)
    total = 0

    async def bounded() -> Message:
        nonlocal total
        if announced is not None and announced > limit:
            raise BodyTooLarge(limit)
        message = await receive()
        if message["type"] == "http.request":
            total += len(message.get("body", b""))
            if total > limit:
                raise BodyTooLarge(limit)
        return message

    await app(scope, bounded, send)


def _content_length(scope: MutableMapping[str, Any]) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
