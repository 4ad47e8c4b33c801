"""`create_app(settings)`: the gateway as one ASGI app. The only module that knows every piece.

Paths under /v1/ go straight to the proxy (no framework on the hot path); probes are answered
here. Resources are opened in the lifespan, never at import or construction time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from signalvault.audit import AuditTrail
from signalvault.config import Settings
from signalvault.crypto import load_master_key
from signalvault.errors import StoreError
from signalvault.guardrails.engine import Engine
from signalvault.guardrails.policy import DEFAULT_RULES, Policy, parse_rules, rules_digest
from signalvault.integrity.sealer import Sealer
from signalvault.keyring import KeyRing, load_pepper
from signalvault.providers import Router, new_client_session
from signalvault.proxy import Proxy, Receive, Scope, Send
from signalvault.screening import Screen
from signalvault.store import Store, open_store
from signalvault.tokens import TokenCounter

log = logging.getLogger("signalvault.app")


@dataclass(slots=True)
class Services:
    """Everything a running gateway holds open."""

    store: Store
    keyring: KeyRing
    trail: AuditTrail
    sealer: Sealer


def open_services(settings: Settings) -> Services:
    """Open the store and the key material (also used by CLI commands)."""
    master_key = load_master_key(settings.crypto, settings.store.data_dir)
    store = open_store(settings.store)
    store.open()
    try:
        pepper = load_pepper(store, master_key)
    except Exception:
        store.close()
        raise
    trail = AuditTrail(store, master_key)
    return Services(store, KeyRing(store, pepper), trail, Sealer(store, master_key, settings.audit))


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
        self.services: Services | None = None
        self._session: aiohttp.ClientSession | None = None
        self._proxy: Proxy | None = None
        self._seal_task: asyncio.Task[None] | None = None
        self._stop_sealing = asyncio.Event()

    async def startup(self) -> None:
        self.services = await asyncio.to_thread(open_services, self.settings)
        self._session = new_client_session()
        tokens = TokenCounter()
        await asyncio.to_thread(tokens.warm)
        screen = await asyncio.to_thread(load_screen, self.settings, self.services.store, tokens)
        self._proxy = Proxy(
            keyring=self.services.keyring,
            trail=self.services.trail,
            router=self.router,
            screen=screen,
            session=self._client,
            tokens=tokens,
            max_body_bytes=self.settings.server.max_body_bytes,
        )
        self._stop_sealing = asyncio.Event()
        self._seal_task = asyncio.create_task(self._seal_periodically(self.services.sealer))
        log.info("gateway started", extra={"providers": sorted(self.router.providers)})

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
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._seal_task is not None:
            self._stop_sealing.set()
            await self._seal_task  # lets a seal in progress finish
            self._seal_task = None
        if self.services is not None:
            with contextlib.suppress(StoreError):  # logged by the writer; the seal goes on
                # Resolves once every write queued before it (completions) is committed.
                await self.services.store.write_ahead([])
            await asyncio.to_thread(self._final_seal, self.services)
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
        ready = all(value == "ok" for value in checks.values())
        await _json(
            send, 200 if ready else 503, {"status": "ready" if ready else "not ready", **checks}
        )

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
