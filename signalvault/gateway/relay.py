"""Relaying a provider's answer to the caller: a JSON body screened whole, or a stream screened
event by event (output guardrails with hold-back), then the record completed with what the
caller was allowed to see. A client disconnect closes the provider connection at once."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from signalvault.errors import HTTPError, ProviderError
from signalvault.gateway import safe_json
from signalvault.gateway.asgi import Receive, Send, send_error
from signalvault.gateway.request_body import ClientGone
from signalvault.gateway.screening import Screen
from signalvault.gateway.tokens import TokenCounter
from signalvault.gateway.tool_side import ToolSide
from signalvault.gateway.upstream.http1 import Response, UpstreamError
from signalvault.gateway.wire import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_STREAM_BYTES,
    StreamAssembler,
    native_error,
    prompt_text,
    sse_error_event,
)
from signalvault.gateway.wire import usage as usage_of
from signalvault.guardrails.engine import Redactor
from signalvault.trail.audit import (
    BLOCKED,
    CANCELLED,
    OK,
    PROVIDER_ERROR,
    STREAM_CUT,
    AuditTrail,
    Interaction,
)
from signalvault.trail.linked import Linked

# Provider response headers worth passing back (request ids for support tickets, rate limits).
_PASS_BACK = ("x-request-id", "request-id", "retry-after", "openai-processing-ms")


class BrokenStream(Exception):
    """The provider sent an event the gateway cannot read; the stream is cut before it."""


class StreamCut(ProviderError):
    """Told to the caller, in its stream, when the provider's stream is cut."""

    code = "stream_cut"


BROKE_OFF = "The provider's stream broke off before its end; the answer is incomplete."
UNREADABLE = (
    "The provider's stream was cut: it sent an event the gateway cannot read or relay "
    "(malformed, or over the size limits); the answer is incomplete."
)
# How a relayed chunk can end an SSE event: a cut there leaves no event half-sent.
_EVENT_ENDS = (b"\n\n", b"\r\n\r\n", b"\r\r")


class Relay:
    """Sends one provider answer on to the caller and completes its audit record."""

    def __init__(self, trail: AuditTrail, tokens: TokenCounter) -> None:
        self._trail = trail
        self._tokens = tokens

    async def body(
        self,
        send: Send,
        interaction: Interaction,
        response: Response,
        data: bytes,
        parsed: Any,
        redactor: Redactor,
        screen: Screen,
        tools: ToolSide | None = None,
    ) -> None:
        """Relay `data`, the body `Upstream` read (within the provider's size cap), and parsed
        if it was a success (`Upstream` refuses anything but a JSON object there)."""
        interaction.outcome = OK if response.status < 400 else PROVIDER_ERROR
        if response.status >= 400:
            interaction.error_code = f"provider_{response.status}"
        if parsed is None and data:
            with contextlib.suppress(safe_json.InvalidJSON):
                parsed = safe_json.loads(data)
        interaction.prompt_tokens, interaction.completion_tokens = usage_of(interaction.api, parsed)
        if isinstance(parsed, dict) and isinstance(parsed.get("model"), str):
            interaction.model_used = parsed["model"]
        stored = data
        calls = tools.calls_in(interaction, parsed) if tools is not None else []
        if response.status < 400:
            try:
                screened = screen.response(interaction, parsed, data, redactor)
            except HTTPError as exc:  # the guardrail engine failed and the mode is closed
                await self._refuse_output(send, interaction, exc, PROVIDER_ERROR, None)
                return
            if screened.blocked is not None:
                linked = []
                if tools is not None and calls:
                    tools.judge_response(interaction, calls, screened)
                    linked = tools.linked(interaction, calls)
                await self._refuse_output(
                    send, interaction, screened.blocked, BLOCKED, screened.stored, linked
                )
                return
            if tools is not None and calls:
                refusal = tools.judge_response(interaction, calls, screened)
                if refusal is not None:
                    linked = tools.linked(interaction, calls)
                    await self._refuse_output(
                        send, interaction, refusal, BLOCKED, screened.stored, linked
                    )
                    return
            data, stored = screened.forward, screened.stored
        else:
            data = native_error(interaction.api, response.status, parsed) or data
        try:
            headers = response_headers(response, interaction.id, "application/json")
            headers.append((b"content-length", b"%d" % len(data)))  # not chunked: one send
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": data})
        except ClientGone:
            interaction.outcome = interaction.error_code = CANCELLED
        linked = tools.linked(interaction, calls) if tools is not None and calls else []
        self._trail.complete(interaction, stored, linked if response.status < 400 else ())

    async def _refuse_output(
        self,
        send: Send,
        interaction: Interaction,
        error: HTTPError,
        outcome: str,
        stored: bytes | None,
        linked: list[Linked] | None = None,
    ) -> None:
        """The provider answered, but the answer may not reach the caller."""
        interaction.outcome = outcome
        interaction.status_code = error.status_code
        interaction.error_code = error.code
        self._trail.complete(interaction, stored, linked or ())
        await send_error(send, interaction.api, error, interaction.id)

    async def stream(
        self,
        send: Send,
        receive: Receive,
        interaction: Interaction,
        response: Response,
        payload: dict[str, Any],
        redactor: Redactor,
        screen: Screen,
        tools: ToolSide | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES,
    ) -> None:
        """Relay an SSE stream; an event over `max_event_bytes`, or more than `max_stream_bytes`
        in all, cuts it (`stream_cut`)."""
        assembler = StreamAssembler(interaction.api, max_event_bytes, max_stream_bytes)
        judge = tools.stream_judge(assembler) if tools is not None else None
        guard = screen.stream(interaction, redactor, judge)
        gone = asyncio.Event()

        async def _watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            response.close()  # stop reading from the provider at once

        watcher = asyncio.ensure_future(_watch_disconnect())
        outcome = OK
        between_events = True  # what reached the caller so far ends with a whole event
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": response_headers(response, interaction.id, "text/event-stream"),
                }
            )
            async for chunk in response.iter_any():
                events = assembler.feed(chunk)  # the stream's one reader
                if assembler.is_broken:
                    raise BrokenStream  # before any byte of this chunk reaches the caller
                out = (
                    chunk
                    if guard is None
                    else screen.feed(guard, interaction, assembler, chunk, events)
                )
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                    between_events = out.endswith(_EVENT_ENDS)
                if guard is not None and guard.is_stopped:
                    break  # blocked or aborted: nothing more may reach the caller
            if guard is not None and not guard.is_stopped:
                out = screen.feed(guard, interaction, assembler, None, [])
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except (UpstreamError, BrokenStream) as exc:
            outcome = STREAM_CUT
            if between_events:
                # Said in the caller's stream, whose SDK raises it, and the answer ends: left
                # unfinished it would read as a dropped connection, and the server logs an
                # error for every such answer. Half an event sent: left broken off.
                error = StreamCut(UNREADABLE if isinstance(exc, BrokenStream) else BROKE_OFF)
                event = sse_error_event(interaction.api, error, assembler.sequence)
                with contextlib.suppress(ClientGone):
                    await send({"type": "http.response.body", "body": event})
        except ClientGone:
            gone.set()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if gone.is_set():
                outcome = CANCELLED
            elif guard is not None and (guard.blocked is not None or guard.refused is not None):
                outcome = BLOCKED
            elif guard is not None and guard.is_aborted:
                outcome = PROVIDER_ERROR  # the guardrail engine failed and the mode is closed
            elif outcome == OK and not assembler.is_complete:
                outcome = STREAM_CUT
            if guard is not None:
                interaction.evaluations.extend(e.as_dict() for e in guard.evaluations)
            log_rules = screen.rules_left_to_log(interaction, guard)
            positions = sorted(assembler.tool_arguments)
            logged = None
            if log_rules != []:
                arguments = ["".join(assembler.tool_arguments[p]) for p in positions]
                logged = screen.log_stream(
                    interaction, "".join(assembler.text), redactor, arguments, log_rules
                )
            if guard is not None:
                # Log what the guard let through (redacted, never restored), not the raw text.
                assembler.text = [guard.stored_text()]
                args = guard.stored_arguments()
                assembler.tool_arguments = {i: [a] for i, a in args.items()}
            refused = guard.refused if guard is not None else None
            interaction.outcome = outcome  # tool_call events take the model call's outcome
            linked = []
            if tools is not None and interaction.status_code == 200:
                linked = tools.finish_stream(interaction, assembler, guard, logged, positions)
            self._finish_stream(
                interaction, assembler, payload, outcome, refused.code if refused else None, linked
            )

    def _finish_stream(
        self,
        interaction: Interaction,
        assembler: StreamAssembler,
        payload: dict[str, Any],
        outcome: str,
        error_code: str | None = None,
        linked: list[Linked] | None = None,
    ) -> None:
        interaction.outcome = outcome
        if error_code is not None:
            interaction.error_code = error_code
        elif outcome == BLOCKED:
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
                # Tool-call arguments are generated tokens too (budgets must see them).
                generated = "".join(assembler.text) + "".join(
                    "".join(parts) for parts in assembler.tool_arguments.values()
                )
                interaction.completion_tokens = self._tokens.count(generated, model)
            interaction.tokens_estimated = True
        self._trail.complete(interaction, assembler.assembled(), linked or ())


def response_headers(
    response: Response, request_id: str, default_type: str
) -> list[tuple[bytes, bytes]]:
    is_stream = default_type == "text/event-stream"
    # A JSON answer goes out as the JSON the gateway read or rebuilt, whatever the provider
    # called it; a stream keeps the provider's type (it was checked to be text/event-stream).
    content_type = response.headers.get("content-type", default_type) if is_stream else default_type
    headers = [
        (b"content-type", content_type.encode("latin-1")),
        (b"x-signalvault-request-id", request_id.encode()),
    ]
    if is_stream:
        headers.append((b"cache-control", b"no-cache"))
    for name in _PASS_BACK:
        value = response.headers.get(name)
        if value is not None:
            headers.append((name.encode(), value.encode("latin-1")))
    return headers
