"""`create_app(settings)`: the gateway as one ASGI app. The only module that knows every piece.

Paths under /v1/ go straight to the proxy (no framework on the hot path); probes are answered
here. Resources are opened in the lifespan, never at import or construction time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from signalvault.agents.capture import ToolEvents
from signalvault.config import Secret, Settings
from signalvault.control.body_limit import within
from signalvault.control.policies import PolicyService, stored_rules
from signalvault.control.services import Services, open_accounts, open_services
from signalvault.errors import StoreError
from signalvault.evidence.hooks import EvidenceHooks
from signalvault.evidence.register import record_changes
from signalvault.gateway import probes
from signalvault.gateway.asgi import Receive, Scope, Send
from signalvault.gateway.limits import Limits, open_limiter
from signalvault.gateway.live_screen import LiveScreen
from signalvault.gateway.metrics import Metrics
from signalvault.gateway.providers import Router
from signalvault.gateway.proxy import Proxy
from signalvault.gateway.screening import Screen
from signalvault.gateway.tokens import TokenCounter
from signalvault.gateway.upstream import Upstream
from signalvault.gateway.upstream.http1 import Client
from signalvault.guardrails.engine import Engine
from signalvault.guardrails.policy import Policy
from signalvault.store import Store
from signalvault.store.policy_queries import PolicyVersion
from signalvault.store.writer import GroupCommitWriter
from signalvault.trail.alerts import Alerts
from signalvault.trail.audit import CANCELLED, AuditTrail, Interaction
from signalvault.trail.integrity.sealer import Sealer
from signalvault.trail.rescue import Rescue
from signalvault.trail.retention import scheduled_run
from signalvault.trail.spool import Spool, replay_file

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp

    from signalvault.agents.telemetry.exporter import SpanExport
    from signalvault.control.api.deps import AccountService
    from signalvault.gateway.mcp_endpoint import McpEndpoint

log = logging.getLogger("signalvault.app")
# At shutdown, how long requests the server cancelled (past its grace period) get to record
# their outcome before the trail is flushed.
CANCELLED_DRAIN_SECONDS = 5.0
SPOOL_RETRY_SECONDS = 0.5  # replay retry delay while the store still fails, doubling
SPOOL_RETRY_MAX_SECONDS = 10.0
AccountsFactory = Callable[[Services], "AccountService"]
MCP_PREFIX = "/mcp/"  # gateway/mcp_endpoint.py serves it; the MCP SDK loads only when configured


def load_screen(
    settings: Settings, store: Store, trail: AuditTrail, tokens: TokenCounter
) -> LiveScreen:
    """The active policy compiled, after the config file's rules had their say (first policy of
    an empty store, or a proposal for review; see PolicyService.sync_config), kept current."""
    seen = store.policy_version()
    service = PolicyService(store, trail, review=settings.guardrails.two_person_review)
    active = service.sync_config(settings.guardrails.rules)
    build = functools.partial(build_screen, settings, tokens)
    return LiveScreen(store, build, build(active), seen)


def build_screen(settings: Settings, tokens: TokenCounter, version: PolicyVersion) -> Screen:
    guardrails = settings.guardrails
    engine = Engine(
        Policy(version.version, stored_rules(version)),
        tokens.count,
        cache_entries=guardrails.scan_cache_entries,
    )
    return Screen(engine, guardrails.failure_mode, guardrails.stream_holdback_chars)


class GatewayApp:
    """The ASGI application. `startup()`/`shutdown()` run from the ASGI lifespan (or tests)."""

    def __init__(self, settings: Settings, accounts: AccountsFactory | None = None) -> None:
        self.settings = settings
        # Builds the admin API's account service over the opened services; None: the admin API
        # refuses every request.
        self.accounts = accounts
        self._admin: FastAPI | None = None
        self._dashboard: ASGIApp | None = None
        self.router = Router(settings)  # checks provider credentials before anything starts
        self.upstream = Upstream(
            settings.providers, self._client, credentials=self._stored_credential
        )
        self.services: Services | None = None
        self._session: Client | None = None
        self._proxy: Proxy | None = None
        self._mcp: McpEndpoint | None = None  # /mcp/<name>, when [[mcp_servers]] are configured
        self.telemetry: SpanExport | None = None  # OTLP export, when [telemetry] names a collector
        self._limits: Limits | None = None
        self._retention: asyncio.Task[None] | None = None
        self._stopping = threading.Event()
        self._wake = asyncio.Event()
        self.metrics = Metrics()
        self.alerts = Alerts(
            settings.alerts,
            on_sent=self.metrics.count_alert,
            on_dropped=self.metrics.count_dropped_alert,
            events=self._alert_events,
        )
        # Classification, the provider register and incidents (SPEC §7c).
        self.evidence = EvidenceHooks(settings, self.alerts)
        self.upstream.on_breaker_open(self.evidence.storm.opened)
        self._seal_task: asyncio.Task[None] | None = None
        self._stop_sealing = asyncio.Event()
        token = settings.server.metrics_token
        self._metrics_auth = f"Bearer {token.reveal()}".encode() if token is not None else None
        self._spool: Spool | None = None
        self._rescue: Rescue | None = None  # write-behind ops of failed batches (trail/rescue.py)
        self._replayer: asyncio.Future[None] | None = None
        self._active = 0  # /v1 requests being handled
        self._idle = asyncio.Event()
        self._idle.set()
        # Called once startup is complete, before the first request (`serve` tunes the GC),
        # and once the admin API and dashboard are built, on their first request.
        self.on_started: Callable[[], None] | None = None
        self.on_control_built: Callable[[], None] | None = None
        self._building = asyncio.Lock()  # one build of the admin API for concurrent first calls

    def _alert_events(self) -> tuple[str, ...]:
        """The alert kinds in force: run-time overrides once the store is open."""
        if self.services is None:
            return self.settings.alerts.events
        return self.services.runtime.alert_events()

    def _observe(self, interaction: Interaction) -> None:
        """The audit trail's observer: every finished interaction (model call, MCP call) feeds
        metrics, alerts and, with [telemetry] otlp_endpoint, an exported span. Tool calls
        and results are counted and alerted on with the model call that carried them (its record
        holds their guardrail results too): they only become spans (`event_observer`)."""
        self.metrics.observe(interaction)
        self.alerts.observe(interaction)
        self.evidence.observe(interaction)
        if self.telemetry is not None:
            self.telemetry.observe(interaction)

    async def startup(self) -> None:
        if self.settings.telemetry.otlp_endpoint:
            from signalvault.agents.telemetry.exporter import open_span_export

            self.telemetry = open_span_export(self.settings, self.metrics.count_spans)
        self.services = await asyncio.to_thread(open_services, self.settings)
        self.services.trail.observer = self._observe
        if self.telemetry is not None:
            self.services.trail.event_observer = self.telemetry.observe_event
        self.services.trail.classifier = self.evidence.classifier
        self.evidence.attach(self.services.incidents)
        await asyncio.to_thread(
            record_changes,
            self.services.store,
            self.services.trail,
            self.evidence.register,
            "config",
        )
        # Overrides loaded before the first request, off the event loop.
        await asyncio.to_thread(self.services.runtime.current)
        # Stored provider credentials unwrapped off the event loop before the first request.
        await asyncio.to_thread(self.services.credentials.resolve, "", None)
        self.metrics.set_breaker_source(self.upstream.breaker_states)
        writer = getattr(self.services.store, "writer", None)
        if isinstance(writer, GroupCommitWriter):
            writer.on_batch = self.metrics.observe_batch
            trail = self.services.trail
            self._rescue = Rescue(self.services.store, lambda: trail.spool)
            writer.on_lost = self._rescue
            # Alone, a request's write-ahead record commits on the loop's thread (nothing else
            # for the loop to do meanwhile); with others in flight, in the commit thread.
            writer.may_commit_inline = lambda: self._active <= 1
            self.metrics.set_pending_source(lambda: writer.pending_ops)
        if self.alerts.is_enabled:
            self.alerts.start()
        if self.settings.store.spool_dir is not None:
            await self._open_spool(self.settings.store.spool_dir)
        self._session = Client()
        tokens = TokenCounter()
        await asyncio.to_thread(tokens.warm)
        live = await asyncio.to_thread(
            load_screen, self.settings, self.services.store, self.services.trail, tokens
        )
        self.metrics.set_scan_cache_source(lambda: live.screen.engine.cache)
        self._limits = Limits(
            self.settings.limits,
            open_limiter(self.settings.limits),
            count_tokens=tokens.count,
            usage=self.services.store.key_tokens_since,
            live=self.services.runtime.limits,
        )
        # One per process: /v1 and /mcp calls share its call index, so they join the same runs.
        agents = ToolEvents(
            self.services.trail, self.services.store, has_mcp=bool(self.settings.mcp_servers)
        )
        self._proxy = Proxy(
            keyring=self.services.keyring,
            trail=self.services.trail,
            router=self.router,
            screen=live.screen,
            reload_screen=live.current,
            upstream=self.upstream,
            tokens=tokens,
            max_body_bytes=self.settings.server.max_body_bytes,
            limits=self._limits,
            body_timeout_seconds=self.settings.server.body_timeout_seconds,
            agents=agents,
            register=self.evidence.register,
        )
        if self.settings.mcp_servers:
            from signalvault.gateway.mcp_endpoint import McpEndpoint

            telemetry = self.telemetry
            self._mcp = McpEndpoint.build(
                self.settings,
                self.services.keyring,
                self.services.trail,
                live.current,
                agents,
                telemetry.keep_content if telemetry and telemetry.captures_content else None,
            )
            await self._mcp.start()
        self._stopping.clear()
        self._wake = asyncio.Event()
        self._building = asyncio.Lock()  # bound to this lifespan's event loop, not a past one
        self._retention = asyncio.create_task(self._retention_loop())
        self._stop_sealing = asyncio.Event()
        self._seal_task = asyncio.create_task(self._seal_periodically(self.services.sealer))
        log.info("gateway started", extra={"providers": sorted(self.router.providers)})
        if self.on_started is not None:
            self.on_started()

    async def _open_spool(self, directory: Path) -> None:
        assert self.services is not None
        store = self.services.store
        spool = Spool(directory, self.settings.store.spool_max_bytes)
        for orphan in await asyncio.to_thread(spool.open):
            # Left by a process that died: into the store before anything new is written.
            replayed = await replay_file(store, orphan)
            log.warning("replayed an audit spool left behind", extra={"count": replayed})
        self.services.trail.spool = spool
        self._spool = spool
        self._replayer = asyncio.ensure_future(self._replay(spool, store))
        self.metrics.set_spool_source(lambda: spool.pending_bytes)

    async def _replay(self, spool: Spool, store: Store) -> None:
        """Move spooled writes into the store whenever there are some and it answers."""
        delay = SPOOL_RETRY_SECONDS
        while True:
            await spool.wait_pending()
            try:
                await spool.replay(store)
                delay = SPOOL_RETRY_SECONDS
            except StoreError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, SPOOL_RETRY_MAX_SECONDS)

    async def _retention_loop(self) -> None:
        """Apply retention every `[retention] interval_seconds`, in a thread, batch by batch."""
        services, settings = self.services, self.settings.retention
        assert services is not None
        holder = uuid.uuid4().hex
        while not self._stopping.is_set():
            try:
                report = await asyncio.to_thread(
                    scheduled_run,
                    services.store,
                    services.trail,
                    settings,
                    holder,
                    self._stopping.is_set,
                )
                if report is not None:
                    log.info(report.summary())
            except Exception as exc:  # a failed run is retried next interval
                log.error("retention run failed: %s: %s", type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), settings.interval_seconds)

    async def _seal_periodically(self, sealer: Sealer) -> None:
        """Seal every `seal_interval_seconds` in a thread, never on a request's path."""
        while not self._stop_sealing.is_set():
            try:
                await asyncio.to_thread(sealer.seal)
            except Exception as exc:  # the next round retries; requests are unaffected
                log.error(
                    "audit seal failed: %s",
                    exc if isinstance(exc, StoreError) else type(exc).__name__,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stop_sealing.wait(), self.settings.audit.seal_interval_seconds
                )

    def _final_seal(self, services: Services) -> None:
        """On shutdown: commit queued completions, seal what is final, hand the lease over."""
        try:
            services.store.flush()
            services.sealer.seal()
        except Exception as exc:
            log.error(
                "final audit seal failed: %s",
                exc if isinstance(exc, StoreError) else type(exc).__name__,
            )
        finally:
            services.sealer.close()

    async def shutdown(self) -> None:
        # The server stopped accepting and waited `shutdown_grace_seconds` for requests, then
        # cancelled the rest: give those a moment to record their outcome (streams: `stream_cut`).
        try:
            await asyncio.wait_for(self._idle.wait(), CANCELLED_DRAIN_SECONDS)
        except TimeoutError:
            log.error("requests still running at shutdown", extra={"count": self._active})
        if self._mcp is not None:
            await self._mcp.stop()  # upstream MCP connections and processes
            self._mcp = None
        if self.services is not None:
            stranded = self.services.trail.complete_open(CANCELLED, "gateway_shutdown")
            if stranded:
                log.warning("requests cut by shutdown", extra={"count": stranded})
        # Alerts still queued become incidents before the store closes.
        await asyncio.to_thread(self.evidence.stop)
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
            self._replayer = None
        if self._spool is not None and self.services is not None and self._spool.is_active:
            # One last try; what is left is replayed by the next process to start.
            with contextlib.suppress(StoreError):
                await self._spool.replay(self.services.store)
        if self._limits is not None:
            await self._limits.close()  # settles outstanding reservations, closes Redis
            self._limits = None
        if self._retention is not None:
            # Ends after the batch in progress, before the store closes under it.
            self._stopping.set()
            self._wake.set()
            await self._retention
            self._retention = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._seal_task is not None:
            self._stop_sealing.set()
            await self._seal_task  # lets a seal in progress finish
            self._seal_task = None
        if self.services is not None:
            if self._rescue is not None:
                await self._rescue.finish()
            with contextlib.suppress(StoreError):  # logged by the writer; the seal goes on
                # Resolves once every write queued before it (completions) is committed.
                await self.services.store.write_ahead([])
            await asyncio.to_thread(self._final_seal, self.services)
            self._admin = None
            self._dashboard = None
            # Flushes queued outcome updates before the store closes.
            await asyncio.to_thread(self.services.store.close)
            self.services = None
        if self._spool is not None:
            if self._spool.is_active:
                log.error(
                    "audit writes left in the spool for the next start",
                    extra={"bytes": self._spool.pending_bytes},
                )
            self._spool.close()
            self._spool = None
        await asyncio.to_thread(self.alerts.stop)
        if self.telemetry is not None:
            await asyncio.to_thread(self.telemetry.shutdown)  # bounded: shutdown_timeout_seconds
            self.telemetry = None
        log.info("gateway stopped")

    def _stored_credential(self, provider: str, environment: str | None) -> Secret | None:
        """The stored provider credential for a request (see signalvault/credentials.py)."""
        if self.services is None:
            return None
        return self.services.credentials.resolve(provider, environment)

    def _client(self) -> Client:
        assert self._session is not None
        return self._session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            handler = self._data_plane(path)
            if handler is not None:
                self._active += 1
                self._idle.clear()
                try:
                    await handler(scope, receive, send)
                finally:
                    self._active -= 1
                    if not self._active:
                        self._idle.set()
            elif path.startswith("/api/") and await self._control_plane():
                assert self._admin is not None
                await within(self._admin, self._max_body(), scope, receive, send)
            elif path == "/metrics":
                await probes.metrics(scope, send, self.metrics, self._metrics_auth)
            elif path == "/healthz":
                await probes.json_answer(send, 200, {"status": "ok"})
            elif path == "/readyz":
                services = self.services
                await probes.readiness(
                    send,
                    None if services is None else services.store.ping,
                    self.router.providers,
                    self.upstream.breaker_states(),
                )
            elif await self._control_plane():
                assert self._dashboard is not None
                await within(self._dashboard, self._max_body(), scope, receive, send)
            else:
                await probes.json_answer(send, 404, probes.error("not found", "not_found"))
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _control_plane(self) -> bool:
        """Whether the admin API and the dashboard are there, building them on the first request
        for either: off the /v1 path, they cost ~1 s and ~20 MB (FastAPI, pydantic, Jinja) that a
        gateway nobody administers never pays. Built in a thread, so /v1 requests go on."""
        if self._admin is not None:
            return True
        async with self._building:
            if self._admin is None and self.services is not None:
                await asyncio.to_thread(self.admin_api)
                if self.on_control_built is not None:
                    self.on_control_built()
        return self._admin is not None

    def admin_api(self) -> FastAPI:
        """The admin API, built now if no request built it yet (with the dashboard, which shares
        its context: store, accounts, sessions, caches). After startup only."""
        if self._admin is None:
            assert self.services is not None, "the admin API needs the opened services"
            from signalvault.control.api import create_admin_api
            from signalvault.dashboard.site import create_dashboard

            accounts = None if self.accounts is None else self.accounts(self.services)
            admin = create_admin_api(
                self.services, self.settings, accounts, self.upstream.breaker_states
            )
            self._dashboard = create_dashboard(admin.state.context)
            self._admin = admin
        return self._admin

    def _max_body(self) -> int:
        return self.settings.server.max_body_bytes

    def _data_plane(self, path: str) -> Callable[[Scope, Receive, Send], Awaitable[None]] | None:
        """The handler of a /v1 or /mcp request (counted for the shutdown drain), else None."""
        if path.startswith("/v1/"):
            return self._proxy
        if path.startswith(MCP_PREFIX):
            return self._mcp
        return None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def account_service(settings: Settings) -> AccountsFactory:
    """The admin API's account service factory (see `open_accounts`)."""
    return lambda services: open_accounts(services, settings)


def create_app(settings: Settings, accounts: AccountsFactory | None = None) -> GatewayApp:
    """The gateway; the admin API authenticates through `accounts` (default: the account store)."""
    return GatewayApp(settings, accounts or account_service(settings))
