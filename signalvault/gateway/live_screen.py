"""The guardrail Screen of the store's active policy, swapped when the policy changes.

Every request asks `current()`: a memory read of the store's policy change counter. When it
moved, the first request to see it rebuilds the engine in a thread (the event loop keeps
serving other work) and later requests wait for that rebuild, so once an approval is committed
every request that starts afterwards in this process is judged by the new policy. A request in
flight keeps the Screen it started with.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from signalvault.errors import StoreError
from signalvault.gateway.screening import Screen
from signalvault.store import Store
from signalvault.store.policy_queries import PolicyVersion

log = logging.getLogger("signalvault.guardrails")
RETRY_SECONDS = 1.0  # after a failed rebuild the previous policy stays in force this long


class LiveScreen:
    def __init__(
        self,
        store: Store,
        build: Callable[[PolicyVersion], Screen],
        screen: Screen,
        seen: int,
    ) -> None:
        """`seen`: the store's policy counter read before `screen`'s policy was loaded, so a
        change committed in between is still noticed."""
        self.screen = screen
        self._store = store
        self._build = build
        self._seen = seen
        self._lock = asyncio.Lock()
        self._retry_at = 0.0

    async def current(self) -> Screen:
        try:
            if self._store.policy_version() == self._seen:
                return self.screen
        except StoreError:  # the request fails closed at its write-ahead anyway
            return self.screen
        return await self._reload()

    async def _reload(self) -> Screen:
        async with self._lock:
            try:
                seen = self._store.policy_version()
                if seen == self._seen or time.monotonic() < self._retry_at:
                    return self.screen
                rebuilt = await asyncio.to_thread(self._rebuild)
            except Exception as exc:
                # The version in force was approved too; keep it and retry shortly.
                log.error(
                    "guardrail policy reload failed; the previous policy stays in force",
                    extra={"error": type(exc).__name__, "version": self.screen.policy_version},
                )
                self._retry_at = time.monotonic() + RETRY_SECONDS
                return self.screen
            self._seen = seen
            if rebuilt is not None:
                self.screen = rebuilt
                log.info("guardrail policy reloaded", extra={"version": rebuilt.policy_version})
            return self.screen

    def _rebuild(self) -> Screen | None:
        active = self._store.current_policy()
        if active is None or active.version == self.screen.policy_version:
            return None
        return self._build(active)
