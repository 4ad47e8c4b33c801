"""`create_app(settings)`: the gateway as one ASGI app. The only module that knows every piece.

Paths under /v1/ go straight to the proxy (no framework on the hot path); probes are answered
here. Resources are opened in the lifespan, never at import or construction time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from signalvault.audit import AuditTrail
from signalvault.config import Settings
from signalvault.errors import StoreError
from signalvault.guardrails.engine import Engine
from signalvault.guardrails.policy import DEFAULT_RULES, Policy, parse_rules, rules_digest
from signalvault.keyring import KeyRing, load_pepper
from signalvault.keysource import open_key_source
from signalvault.limits import Limits, open_limiter
from signalvault.providers import Router, new_client_session
from signalvault.proxy import Proxy, Receive, Scope, Send
from signalvault.retention import scheduled_run
from signalvault.screening import Screen
from signalvault.store import Store, open_store
from signalvault.tokens import TokenCounter
from signalvault.upstream import OPEN, Upstream

log = logging.getLogger("signalvault.app")


@dataclass(slots=True)
class Services:
    """Everything a running gateway holds open."""

    store: Store
    keyring: KeyRing
    trail: AuditTrail


def open_services(settings: Settings) -> Services:
    """Open the store and the key material (also used by CLI commands)."""
    master_key = open_key_source(settings).load()
    store = open_store(settings.store)
    store.open()
    try:
        pepper = load_pepper(store, master_key)
    except Exception:
        store.close()
        raise
    return Services(store, KeyRing(store, pepper), AuditTrail(store, master_key))


def load_screen(settings: Settings, store: Store, tokens: TokenCounter) -> Screen:
    """The configured (or default) policy, recorded as a version in the store, compiled."""
    configured = settings.guardrails.rules
    rules = parse_rules(configured) if configured else DEFAULT_RULES
    rules_json = orjson.dumps([r.as_dict() for r in rules]).decode()
    source = "config" if configured else "default"
    version = store.activate_policy(rules_json, rules_digest(rules), source, created_by=source)
    engine = Engine(Policy(version, rules), tokens.count)
    guardrails = settings.guardrails
    return Screen(engine, guardrails.failure_mode, guardrails.stream_holdback_chars)


class GatewayApp:
    """The ASGI application. `startup()`/`shutdown()` run from the ASGI lifespan (or tests)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.router = Router(settings)  # checks provider credentials before anything starts
        self.upstream = Upstream(settings.providers, self._client)
        self.services: Services | None = None
        self._session: aiohttp.ClientSession | None = None
        self._proxy: Proxy | None = None
        self._limits: Limits | None = None
        self._retention: asyncio.Task[None] | None = None
        self._stopping = threading.Event()
        self._wake = asyncio.Event()

    async def startup(self) -> None:
        self.services = await asyncio.to_thread(open_services, self.settings)
        self._session = new_client_session()
        tokens = TokenCounter()
        await asyncio.to_thread(tokens.warm)
        screen = await asyncio.to_thread(load_screen, self.settings, self.services.store, tokens)
        self._limits = Limits(
            self.settings.limits,
            open_limiter(self.settings.limits),
            count_tokens=tokens.count,
            usage=self.services.store.key_tokens_since,
        )
        self._proxy = Proxy(
            keyring=self.services.keyring,
            trail=self.services.trail,
            router=self.router,
            screen=screen,
            upstream=self.upstream,
            tokens=tokens,
            max_body_bytes=self.settings.server.max_body_bytes,
            limits=self._limits,
            body_timeout_seconds=self.settings.server.body_timeout_seconds,
        )
        self._stopping.clear()
        self._wake = asyncio.Event()
        self._retention = asyncio.create_task(self._retention_loop())
        log.info("gateway started", extra={"providers": sorted(self.router.providers)})

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

    async def shutdown(self) -> None:
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
        if self.services is not None:
            # Flushes queued outcome updates before the store closes.
            await asyncio.to_thread(self.services.store.close)
            self.services = None
        log.info("gateway stopped")

    def _client(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path.startswith("/v1/") and self._proxy is not None:
                await self._proxy(scope, receive, send)
            elif path == "/healthz":
                await _json(send, 200, {"status": "ok"})
            elif path == "/readyz":
                await self._ready(send)
            else:
                await _json(send, 404, {"error": {"message": "not found", "code": "not_found"}})
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _ready(self, send: Send) -> None:
        checks: dict[str, str] = {}
        try:
            if self.services is None:
                raise StoreError("not started")
            await asyncio.to_thread(self.services.store.ping)
            checks["store"] = "ok"
        except StoreError:
            checks["store"] = "unavailable"
        checks["providers"] = "ok" if self.router.providers else "none configured"
        breakers = self.upstream.breaker_states()
        if self.router.providers and all(breakers[name] == OPEN for name in self.router.providers):
            checks["providers"] = "every circuit breaker open"
        ready = all(value == "ok" for value in checks.values())
        body = {"status": "ready" if ready else "not ready", **checks, "breakers": breakers}
        await _json(send, 200 if ready else 503, body)

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


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def create_app(settings: Settings) -> GatewayApp:
    return GatewayApp(settings)
