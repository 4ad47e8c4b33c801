"""The operations endpoints answered beside the data plane: `/healthz` (process up), `/readyz`
(store and providers reachable, breaker states) and `/metrics` (Prometheus text, optionally
behind a bearer token). Plain ASGI, no framework."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable, Collection
from typing import Any

import orjson

from signalvault.errors import StoreError
from signalvault.gateway.asgi import Scope, Send, send_json
from signalvault.gateway.metrics import CONTENT_TYPE, Metrics
from signalvault.gateway.upstream import OPEN


def error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "code": code}}


async def json_answer(
    send: Send,
    status: int,
    body: dict[str, Any],
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send_json(send, status, orjson.dumps(body), None, extra)


async def metrics(scope: Scope, send: Send, source: Metrics, auth: bytes | None) -> None:
    """`/metrics`: GET or HEAD; with `auth` (the expected Authorization header) set, only a
    caller presenting it (compared in constant time) gets the text."""
    if scope["method"] not in ("GET", "HEAD"):
        await json_answer(
            send, 405, error("GET only", "method_not_allowed"), [(b"allow", b"GET, HEAD")]
        )
        return
    if auth is not None:
        presented = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        if not hmac.compare_digest(presented, auth):
            await json_answer(
                send,
                401,
                error("a valid metrics bearer token is required", "unauthorized"),
                [(b"www-authenticate", b"Bearer")],
            )
            return
    body = source.render()
    headers = [
        (b"content-type", CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


async def readiness(
    send: Send,
    ping: Callable[[], None] | None,
    providers: Collection[str],
    breakers: dict[str, str],
) -> None:
    """`/readyz`: 200 when the store answers `ping` (None: not started) and some provider is
    configured whose circuit breaker is not open; else 503, naming what is not ready."""
    checks: dict[str, str] = {}
    try:
        if ping is None:
            raise StoreError("not started")
        await asyncio.to_thread(ping)
        checks["store"] = "ok"
    except StoreError:
        checks["store"] = "unavailable"
    checks["providers"] = "ok" if providers else "none configured"
    if providers and all(breakers[name] == OPEN for name in providers):
        checks["providers"] = "every circuit breaker open"
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ready" if ready else "not ready", **checks, "breakers": breakers}
    await json_answer(send, 200 if ready else 503, body)
