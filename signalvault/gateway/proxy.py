"""The /v1/* data plane as a bare ASGI callable: authenticate, validate, write ahead, forward
(streaming chunk by chunk), complete the record. No framework on this path: it runs per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import orjson

from signalvault.errors import (
    AuthError,
    BadRequest,
    Forbidden,
    HTTPError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    StoreError,
    StoreUnavailable,
    UnsupportedMedia,
)
from signalvault.gateway.keyring import KeyRing
from signalvault.gateway.limits import BYPASS, Limits, Reservation
from signalvault.gateway.providers import Router, Target
from signalvault.gateway.screening import Screen
from signalvault.gateway.tokens import TokenCounter
from signalvault.gateway.upstream import Upstream, UpstreamFailed
from signalvault.gateway.wire import (
    StreamAssembler,
    end_user,
    error_body,
    family,
    prompt_text,
    trace_id,
)
from signalvault.gateway.wire import usage as usage_of
from signalvault.guardrails.engine import Redactor
from signalvault.trail.audit import (
    BLOCKED,
    CANCELLED,
    OK,
    PROVIDER_ERROR,
    RATE_LIMITED,
    REJECTED,
    STREAM_CUT,
    UNAUTHORIZED,
    AuditTrail,
    Interaction,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("signalvault.proxy")

# Request path -> (api name, upstream endpoint after the version segment).
ENDPOINTS = {
    "/v1/chat/completions": ("chat", "/chat/completions"),
    "/v1/responses": ("responses", "/responses"),
    "/v1/embeddings": ("embeddings", "/embeddings"),
    "/v1/messages": ("messages", "/messages"),
}
STREAMING_APIS = frozenset({"chat", "responses", "messages"})
# Headers read from the caller; everything else stays at the gateway.
_WANTED = frozenset(
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
# Provider response headers worth passing back (request ids for support tickets, rate limits).
_PASS_BACK = ("x-request-id", "request-id", "retry-after", "openai-processing-ms")


class _ClientGone(Exception):
    """The caller disconnected while its request body was being read."""


class Proxy:
    def __init__(
        self,
        *,
        keyring: KeyRing,
        trail: AuditTrail,
        router: Router,
        screen: Screen,
        upstream: Upstream,
        tokens: TokenCounter,
        max_body_bytes: int,
        limits: Limits | None = None,
        body_timeout_seconds: float = 30.0,
        reload_screen: Callable[[], Awaitable[Screen]] | None = None,
    ) -> None:
        self._keyring = keyring
        self._trail = trail
        self._router = router
        self._screen = screen
        # Called as each request starts: the Screen of the policy active now (it changes when a
        # policy is approved); the request keeps the one it got to its end.
        self._reload_screen = reload_screen
        self._upstream = upstream
        self._tokens = tokens
        self._max_body = max_body_bytes
        self._limits = limits
        self._body_timeout = body_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        current: list[Interaction] = []  # the request's interaction, once there is one
        try:
            await self._handle(scope, receive, tracked, current)
        except Exception as exc:
            # A bug must not leak a traceback or content: log the type, answer in native shape.
            log.error("unexpected error in the proxy", extra={"error": type(exc).__name__})
            if current:
                self._trail.abandon(current[0])
            if not started:
                api = ENDPOINTS.get(scope["path"], ("chat", ""))[0]
                await _send_error(send, api, HTTPError("Internal gateway error."), None)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, current: list[Interaction]
    ) -> None:
        path = scope["path"]
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _WANTED
        }
        if path == "/v1/models":
            await self._models(scope, headers, send)
            return
        endpoint = ENDPOINTS.get(path)
        if endpoint is None:
            await _send_error(send, "chat", NotFound(f"Unknown endpoint {path}"), None)
            return
        api, upstream_path = endpoint
        interaction = Interaction(api=api)
        current.append(interaction)
        if scope["method"] != "POST":
            await _send_error(send, api, MethodNotAllowed(f"{path} accepts POST only."), None)
            return
        try:
            interaction.key = self._keyring.authenticate(_presented_key(headers))
        except AuthError as exc:
            await self._reject(send, interaction, exc, None, outcome=UNAUTHORIZED)
            return
        except StoreError:
            await self._reject(send, interaction, _store_down(), None)
            return

        redactor = Redactor()
        if self._reload_screen is not None:
            self._screen = await self._reload_screen()
        screen = self._screen
        try:
            body = await self._read_body(receive, headers)
            payload = _parse(body, headers)
            targets = self._admit(interaction, payload, headers)
            screened = screen.request(interaction, payload, body, redactor)
        except _ClientGone:
            return
        except HTTPError as exc:
            # Content that never passed the guardrails is not kept, not even encrypted.
            await self._reject(send, interaction, exc, None)
            return
        if screened.blocked is not None:
            # The trail keeps the attempt with every finding masked; the provider never sees it.
            await self._reject(send, interaction, screened.blocked, screened.stored, BLOCKED)
            return
        body = screened.forward
        try:
            reservation = await self._reserve(interaction, payload)
        except HTTPError as exc:
            outcome = RATE_LIMITED if isinstance(exc, RateLimited) else REJECTED
            await self._reject(send, interaction, exc, None, outcome)
            return

        try:
            await self._trail.begin(interaction, body)
        except StoreError:
            # Fail closed: nothing is forwarded that was not first recorded.
            self._settle(reservation, interaction)
            await _send_error(send, api, _store_down(), interaction.id)
            return
        try:
            await self._forward(
                send,
                receive,
                interaction,
                targets,
                upstream_path,
                payload,
                body,
                headers,
                redactor,
                screen,
            )
        finally:  # JSON, stream, provider error or cancellation: usage is known (or 0) by now
            self._settle(reservation, interaction)

    # -- admission ---------------------------------------------------------------------------
    async def _read_body(self, receive: Receive, headers: dict[str, str]) -> bytes:
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self._max_body:
            raise PayloadTooLarge(f"Request body exceeds the {self._max_body} byte limit.")
        chunks: list[bytes] = []
        size = 0
        try:
            # One deadline for the whole body: a client trickling bytes cannot hold a slot.
            async with asyncio.timeout(self._body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _ClientGone
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self._max_body:
                        raise PayloadTooLarge(
                            f"Request body exceeds the {self._max_body} byte limit."
                        )
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        except TimeoutError:
            raise RequestTimeout(
                f"The request body did not arrive within {self._body_timeout:g} seconds."
            ) from None

    async def _reserve(
        self, interaction: Interaction, payload: dict[str, Any]
    ) -> Reservation | None:
        """Take this request's share of its limits; None when no limit applies (no cost)."""
        limits, key = self._limits, interaction.key
        if limits is None or key is None or not limits.applies(key, interaction.end_user):
            return None
        reservation = await limits.reserve(
            key, interaction.end_user, interaction.api, payload, interaction.model_requested
        )
        if reservation.is_bypassed:
            interaction.evaluations.append(dict(BYPASS))
        return reservation

    def _settle(self, reservation: Reservation | None, interaction: Interaction) -> None:
        if reservation is not None and self._limits is not None:
            self._limits.settle(reservation, interaction.total_tokens())

    def _admit(
        self, interaction: Interaction, payload: dict[str, Any], headers: dict[str, str]
    ) -> list[Target]:
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("`model` is required and must be a string.", param="model")
        interaction.model_requested = model
        interaction.is_stream = interaction.api in STREAMING_APIS and payload.get("stream") is True
        interaction.end_user = end_user(headers.get("x-signalvault-user"), payload)
        session = headers.get("x-signalvault-session")
        interaction.session_id = session[:256] if session else None
        interaction.trace_id = trace_id(headers.get("traceparent"))
        key = interaction.key
        if key is not None and not key.allows_model(model):
            raise Forbidden(f"This API key may not use the model `{model}`.", param="model")
        targets = self._router.route(family(interaction.api), model)
        interaction.provider = targets[0].provider.name
        interaction.model_used = targets[0].model
        return targets

    async def _reject(
        self,
        send: Send,
        interaction: Interaction,
        error: HTTPError,
        body: bytes | None,
        outcome: str = REJECTED,
    ) -> None:
        interaction.status_code = error.status_code
        interaction.outcome = outcome
        interaction.error_code = error.code
        # A store failure here changes nothing for the caller: nothing was forwarded.
        with contextlib.suppress(StoreError):
            await self._trail.record_rejected(interaction, body)
        await _send_error(send, interaction.api, error, interaction.id)

    async def _models(self, scope: Scope, headers: dict[str, str], send: Send) -> None:
        try:
            key = self._keyring.authenticate(_presented_key(headers))
        except (AuthError, StoreError) as exc:
            error = exc if isinstance(exc, AuthError) else _store_down()
            await _send_error(send, "chat", error, None)
            return
        data = [
            {"id": model, "object": "model", "created": 0, "owned_by": provider}
            for model, provider in self._router.listed_models()
            if key.allows_model(model)
        ]
        await _send_json(send, 200, orjson.dumps({"object": "list", "data": data}), None)

    # -- forwarding --------------------------------------------------------------------------
    async def _forward(
        self,
        send: Send,
        receive: Receive,
        interaction: Interaction,
        targets: list[Target],
        upstream_path: str,
        payload: dict[str, Any],
        body: bytes,
        headers: dict[str, str],
        redactor: Redactor,
        screen: Screen,
    ) -> None:
        # Retries and fallbacks all happen inside `call`, before anything reaches the caller.
        try:
            answer = await self._upstream.call(
                interaction, targets, upstream_path, payload, body, headers
            )
        except UpstreamFailed as failure:
            await self._provider_failed(send, interaction, failure.error)
            return
        response = answer.response
        try:
            interaction.status_code = response.status
            if answer.is_stream:
                await self._relay_stream(
                    send, receive, interaction, response, payload, redactor, screen
                )
            else:
                await self._relay_body(send, interaction, response, redactor, screen)
        finally:
            answer.settle(failed=interaction.outcome == STREAM_CUT)
            response.release()

    async def _relay_body(
        self,
        send: Send,
        interaction: Interaction,
        response: aiohttp.ClientResponse,
        redactor: Redactor,
        screen: Screen,
    ) -> None:
        data = await response.read()
        interaction.outcome = OK if response.status < 400 else PROVIDER_ERROR
        if response.status >= 400:
            interaction.error_code = f"provider_{response.status}"
        try:
            parsed = orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            parsed = None
        interaction.prompt_tokens, interaction.completion_tokens = usage_of(interaction.api, parsed)
        if isinstance(parsed, dict) and isinstance(parsed.get("model"), str):
            interaction.model_used = parsed["model"]
        stored = data
        if response.status < 400:
            try:
                screened = screen.response(interaction, parsed, data, redactor)
            except HTTPError as exc:  # the guardrail engine failed and the mode is closed
                await self._refuse_output(send, interaction, exc, PROVIDER_ERROR, None)
                return
            if screened.blocked is not None:
                await self._refuse_output(
                    send, interaction, screened.blocked, BLOCKED, screened.stored
                )
                return
            data, stored = screened.forward, screened.stored
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": _response_headers(response, interaction.id, "application/json"),
            }
        )
        await send({"type": "http.response.body", "body": data})
        self._trail.complete(interaction, stored)

    async def _refuse_output(
        self,
        send: Send,
        interaction: Interaction,
        error: HTTPError,
        outcome: str,
        stored: bytes | None,
    ) -> None:
        """The provider answered, but the answer may not reach the caller."""
        interaction.outcome = outcome
        interaction.status_code = error.status_code
        interaction.error_code = error.code
        self._trail.complete(interaction, stored)
        await _send_error(send, interaction.api, error, interaction.id)

    async def _relay_stream(
        self,
        send: Send,
        receive: Receive,
        interaction: Interaction,
        response: aiohttp.ClientResponse,
        payload: dict[str, Any],
        redactor: Redactor,
        screen: Screen,
    ) -> None:
        assembler = StreamAssembler(interaction.api)
        guard = screen.stream(interaction, redactor)
        gone = asyncio.Event()

        async def _watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            response.close()  # stop reading from the provider at once

        watcher = asyncio.ensure_future(_watch_disconnect())
        outcome = OK
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": _response_headers(response, interaction.id, "text/event-stream"),
                }
            )
            async for chunk in response.content.iter_any():
                assembler.feed(chunk)
                out = chunk if guard is None else screen.feed(guard, interaction, chunk)
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                if guard is not None and guard.is_stopped:
                    break  # blocked or aborted: nothing more may reach the caller
            if guard is not None and not guard.is_stopped:
                out = screen.feed(guard, interaction, None)
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except (aiohttp.ClientError, TimeoutError, ConnectionError):
            outcome = STREAM_CUT
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if gone.is_set():
                outcome = CANCELLED
            elif guard is not None and guard.blocked is not None:
                outcome = BLOCKED
            elif guard is not None and guard.is_aborted:
                outcome = PROVIDER_ERROR  # the guardrail engine failed and the mode is closed
            elif outcome == OK and not assembler.is_complete:
                outcome = STREAM_CUT
            if guard is None:
                with contextlib.suppress(HTTPError):  # fail-closed comes too late to refuse
                    screen.log_stream(interaction, "".join(assembler.text), redactor)
            else:
                interaction.evaluations.extend(e.as_dict() for e in guard.evaluations)
                # Log what the guard let through (redacted, never restored), not the raw text.
                assembler.text = [guard.stored_text()]
                args = guard.stored_arguments()
                assembler.tool_arguments = {i: [a] for i, a in args.items()}
            self._finish_stream(interaction, assembler, payload, outcome)

    def _finish_stream(
        self,
        interaction: Interaction,
        assembler: StreamAssembler,
        payload: dict[str, Any],
        outcome: str,
    ) -> None:
        interaction.outcome = outcome
        if outcome == BLOCKED:
            interaction.error_code = "guardrail_violation"
        elif outcome != OK:
            interaction.error_code = outcome
        interaction.model_used = assembler.model or interaction.model_used
        interaction.prompt_tokens = assembler.prompt_tokens
        interaction.completion_tokens = assembler.completion_tokens
        if interaction.prompt_tokens is None or interaction.completion_tokens is None:
            # OpenAI streams carry usage only when the client asked for it.
            model = interaction.model_used
            if interaction.prompt_tokens is None:
                interaction.prompt_tokens = self._tokens.count(prompt_text(payload), model)
            if interaction.completion_tokens is None:
                interaction.completion_tokens = self._tokens.count("".join(assembler.text), model)
            interaction.tokens_estimated = True
        self._trail.complete(interaction, assembler.assembled())

    async def _provider_failed(
        self, send: Send, interaction: Interaction, error: HTTPError
    ) -> None:
        log.warning(
            "provider call failed",
            extra={
                "request_id": interaction.id,
                "provider": interaction.provider,
                "error": error.code,
                "attempts": len(interaction.attempts),
            },
        )
        interaction.status_code = error.status_code
        interaction.outcome = PROVIDER_ERROR
        interaction.error_code = error.code
        self._trail.complete(interaction, None)
        await _send_error(send, interaction.api, error, interaction.id)


def _presented_key(headers: dict[str, str]) -> str | None:
    authorization = headers.get("authorization")
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return headers.get("x-api-key")


def _parse(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    content_type = headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise UnsupportedMedia("Send the request body as `Content-Type: application/json`.")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"The request body is not valid UTF-8 (byte {exc.start}).") from None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"The request body is not valid JSON: {exc.msg} (position {exc.pos})."
        ) from None
    if not isinstance(payload, dict):
        raise BadRequest("The request body must be a JSON object.")
    return payload


def _store_down() -> StoreUnavailable:
    return StoreUnavailable("The audit store is unavailable; the request was not forwarded.")


def _response_headers(
    response: aiohttp.ClientResponse, request_id: str, default_type: str
) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-type", response.headers.get("content-type", default_type).encode("latin-1")),
        (b"x-signalvault-request-id", request_id.encode()),
    ]
    if default_type == "text/event-stream":
        headers.append((b"cache-control", b"no-cache"))
    for name in _PASS_BACK:
        value = response.headers.get(name)
        if value is not None:
            headers.append((name.encode(), value.encode("latin-1")))
    return headers


async def _send_json(
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


async def _send_error(send: Send, api: str, error: HTTPError, request_id: str | None) -> None:
    extra = []
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        extra.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    await _send_json(send, error.status_code, error_body(api, error), request_id, extra)
