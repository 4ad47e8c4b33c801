"""The /v1/* data plane as a bare ASGI callable: authenticate, validate, write ahead, forward
(streaming chunk by chunk), complete the record. No framework on this path: it runs per request.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import orjson

from signalvault.agents.capture import AgentTurn, ToolEvents
from signalvault.agents.run_ids import run_id_of
from signalvault.agents.span_ingest import SpanIngest
from signalvault.agents.telemetry.ids import parse_traceparent
from signalvault.errors import (
    AuthError,
    BadRequest,
    ClassificationNotAllowed,
    Forbidden,
    HTTPError,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    StoreError,
    StoreUnavailable,
)
from signalvault.evidence.register import CLASSIFICATION_NOT_ALLOWED, ProviderRegister
from signalvault.gateway import safe_json
from signalvault.gateway.asgi import Message, Receive, Scope, Send, send_error, send_json
from signalvault.gateway.keyring import KeyRing
from signalvault.gateway.limits import BYPASS, Limits, Reservation
from signalvault.gateway.providers import Router, Target
from signalvault.gateway.relay import Relay
from signalvault.gateway.request_body import (
    ENDPOINTS,
    STREAMING_APIS,
    WANTED_HEADERS,
    ClientGone,
    parse_request,
    presented_key,
    read_body,
)
from signalvault.gateway.screening import Screen
from signalvault.gateway.tokens import TokenCounter
from signalvault.gateway.tool_side import ToolSide
from signalvault.gateway.trace_intake import PATH as TRACES_PATH
from signalvault.gateway.trace_intake import TraceIntake
from signalvault.gateway.upstream import Upstream, UpstreamFailed
from signalvault.gateway.wire import end_user, family
from signalvault.guardrails.engine import Redactor
from signalvault.trail.audit import (
    BLOCKED,
    PROVIDER_ERROR,
    RATE_LIMITED,
    REJECTED,
    STREAM_CUT,
    UNAUTHORIZED,
    AuditTrail,
    Interaction,
)

log = logging.getLogger("signalvault.proxy")


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
        agents: ToolEvents | None = None,
        register: ProviderRegister | None = None,
    ) -> None:
        self._keyring = keyring
        self._trail = trail
        self._router = router
        self._screen = screen
        # Called as each request starts: the Screen of the policy active now (it changes when a
        # policy is approved); the request keeps the one it got to its end.
        self._reload_screen = reload_screen
        self._upstream = upstream
        self._relay = Relay(trail, tokens)
        self._max_body = max_body_bytes
        self._limits = limits
        self._body_timeout = body_timeout_seconds
        # Tool calls and results as events of agent runs (SPEC §7b); None: not recorded.
        self._agents = agents
        self._traces = (
            None
            if agents is None
            else TraceIntake(
                keyring,
                SpanIngest(trail, agents.store, agents.calls),
                max_body_bytes,
                body_timeout_seconds,
            )
        )
        self._register = register  # which providers may receive which data class (SPEC §7c)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = True
            try:
                await send(message)
            except (OSError, RuntimeError) as exc:
                # The connection is gone (uvicorn on uvloop raises here when it closed the
                # socket, e.g. on garbage pipelined behind this request): the caller left.
                log.info(
                    "the caller's connection closed first", extra={"error": type(exc).__name__}
                )
                raise ClientGone from exc

        current: list[Interaction] = []  # the request's interaction, once there is one
        try:
            await self._handle(scope, receive, tracked, current)
        except ClientGone:
            if current:  # the relay records a caller that left; anything still open is closed
                self._trail.abandon(current[0])
        except Exception as exc:
            # A bug must not leak a traceback or content: log the type, answer in native shape.
            log.error("unexpected error in the proxy", extra={"error": type(exc).__name__})
            if current:
                self._trail.abandon(current[0])
            if not started:
                api = ENDPOINTS.get(scope["path"], ("chat", ""))[0]
                await send_error(send, api, HTTPError("Internal gateway error."), None)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, current: list[Interaction]
    ) -> None:
        path = scope["path"]
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in WANTED_HEADERS
        }
        if path == "/v1/models":
            await self._models(scope, headers, send)
            return
        if path == TRACES_PATH and self._traces is not None:
            await self._traces(scope, receive, send, headers)
            return
        endpoint = ENDPOINTS.get(path)
        if endpoint is None:
            await send_error(send, "chat", NotFound(f"Unknown endpoint {path}"), None)
            return
        api, upstream_path = endpoint
        interaction = Interaction(api=api)
        current.append(interaction)
        if scope["method"] != "POST":
            await send_error(send, api, MethodNotAllowed(f"{path} accepts POST only."), None)
            return
        try:
            interaction.key = self._keyring.authenticate(presented_key(headers))
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
        turn: AgentTurn | None = None
        try:
            body = await read_body(receive, headers, self._max_body, self._body_timeout)
            payload, body = parse_request(body, headers)
            targets = self._admit(interaction, payload, headers)
            if self._agents is not None:
                turn = self._agents.open(interaction, payload)
                refusal = self._admit_agent(interaction, turn, screen)
                if refusal is not None:
                    await self._reject(send, interaction, refusal, None, BLOCKED, turn)
                    return
            screened = screen.request(interaction, payload, body, redactor)
        except ClientGone:
            return
        except HTTPError as exc:
            # Content that never passed the guardrails is not kept, not even encrypted.
            await self._reject(send, interaction, exc, None, REJECTED, turn)
            return
        if screened.blocked is not None:
            # The trail keeps the attempt with every finding masked; the provider never sees it.
            await self._reject(send, interaction, screened.blocked, screened.stored, BLOCKED, turn)
            return
        body = screened.forward
        if turn is not None and turn.results and self._agents is not None:
            blocked, changed = self._agents.screen_results(
                turn,
                screen.tools,
                partial(screen.context, interaction),
                screened.slots,
                screened.verdict,
            )
            if blocked is not None:
                await self._reject(send, interaction, blocked, screened.stored, BLOCKED, turn)
                return
            if changed:  # spotlighted: the provider gets (and the trail keeps) the marked text
                body = safe_json.dumps(payload)
        targets = self._allowed_targets(interaction, targets)
        if not targets:
            refused = ClassificationNotAllowed(
                f"Data of class `{interaction.classification}` may not be sent to any provider "
                f"of the model `{interaction.model_requested}`.",
                param="model",
            )
            await self._reject(send, interaction, refused, None)
            return
        try:
            reservation = await self._reserve(interaction, payload)
        except HTTPError as exc:
            outcome = RATE_LIMITED if isinstance(exc, RateLimited) else REJECTED
            await self._reject(send, interaction, exc, None, outcome)
            return

        linked = self._agents.result_events(turn) if self._agents is not None else []
        try:
            await self._trail.begin(interaction, body, linked)
        except StoreError:
            # Fail closed: nothing is forwarded that was not first recorded.
            self._settle(reservation, interaction)
            await send_error(send, api, _store_down(), interaction.id)
            return
        tools = None
        if self._agents is not None:
            self._agents.count_model_call(interaction)
            if turn is not None:
                self._agents.forwarded(turn)
                tools = ToolSide(
                    self._agents, turn, screen.tools, partial(screen.context, interaction)
                )
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
                tools,
            )
        finally:  # JSON, stream, provider error or cancellation: usage is known (or 0) by now
            self._settle(reservation, interaction)

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

    def _admit_agent(
        self, interaction: Interaction, turn: AgentTurn | None, screen: Screen
    ) -> HTTPError | None:
        """Tool allowlists on the offered tools and the run's limits, before anything else."""
        agents, policy = self._agents, screen.tools
        interaction.policy_version = screen.policy_version
        if agents is None or not policy.has_rules or (turn is None and interaction.run_id is None):
            return None
        return agents.admit(interaction, turn, policy, screen.context(interaction))

    def _allowed_targets(self, interaction: Interaction, targets: list[Target]) -> list[Target]:
        """The route's targets that may receive the request's data class; each one that may
        not is noted on the record as a skipped attempt (it is never called)."""
        classification = self._trail.classify(interaction)
        if self._register is None:
            return targets
        allowed, refused = self._register.split(targets, classification)
        for target in refused:
            interaction.attempts.append(
                {
                    "provider": target.provider.name,
                    "model": target.model,
                    "skipped": CLASSIFICATION_NOT_ALLOWED,
                    "classification": classification,
                }
            )
        if refused:  # the record names the provider it goes to, or none if it goes nowhere
            first = allowed[0] if allowed else None
            interaction.provider = first.provider.name if first else None
            interaction.model_used = first.model if first else None
        return allowed

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
        trace = parse_traceparent(headers.get("traceparent"))
        if trace is not None:  # the caller's span becomes the parent of this record's span
            interaction.trace_id, interaction.parent_span = trace
        key = interaction.key
        interaction.run_id = run_id_of(
            key.project if key else None, interaction.session_id, interaction.trace_id
        )
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
        turn: AgentTurn | None = None,
    ) -> None:
        interaction.status_code = error.status_code
        interaction.outcome = outcome
        interaction.error_code = error.code
        # A store failure here changes nothing for the caller: nothing was forwarded.
        linked = self._agents.result_events(turn, outcome) if self._agents is not None else []
        with contextlib.suppress(StoreError):
            await self._trail.record_rejected(interaction, body, linked)
        await send_error(send, interaction.api, error, interaction.id)

    async def _models(self, scope: Scope, headers: dict[str, str], send: Send) -> None:
        try:
            key = self._keyring.authenticate(presented_key(headers))
        except (AuthError, StoreError) as exc:
            error = exc if isinstance(exc, AuthError) else _store_down()
            await send_error(send, "chat", error, None)
            return
        data = [
            {"id": model, "object": "model", "created": 0, "owned_by": provider}
            for model, provider in self._router.listed_models()
            if key.allows_model(model)
        ]
        await send_json(send, 200, orjson.dumps({"object": "list", "data": data}), None)

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
        tools: ToolSide | None,
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
                await self._relay.stream(
                    send,
                    receive,
                    interaction,
                    response,
                    payload,
                    redactor,
                    screen,
                    tools,
                    answer.max_event_bytes,
                    answer.max_stream_bytes,
                )
            else:
                await self._relay.body(
                    send, interaction, response, answer.body, answer.parsed, redactor, screen, tools
                )
        finally:
            answer.settle(failed=interaction.outcome == STREAM_CUT)
            response.release()
        if interaction.outcome == STREAM_CUT:
            log.warning(
                "provider stream cut",
                extra={"request_id": interaction.id, "provider": interaction.provider},
            )

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
        await send_error(send, interaction.api, error, interaction.id)


def _store_down() -> StoreUnavailable:
    return StoreUnavailable("The audit store is unavailable; the request was not forwarded.")
