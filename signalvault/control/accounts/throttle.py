"""Login throttling per account email and per client address, counted in the store so every
gateway process sees the same failures. Unknown emails are counted like known ones, so a lock
says nothing about whether an account exists."""

from __future__ import annotations

import math
from collections.abc import Callable

from signalvault.config import AccountSettings
from signalvault.errors import RateLimited
from signalvault.store.account_queries import LOCKOUT_MEMORY, AccountQueries

PURGE_EVERY = 3600.0  # seconds between sweeps of stale counters, per process


def throttle_keys(email: str, address: str | None) -> list[str]:
    keys = [f"email:{email}"]
    if address:
        keys.append(f"address:{address}")
    return keys


class LoginThrottle:
    def __init__(
        self, queries: AccountQueries, settings: AccountSettings | Callable[[], AccountSettings]
    ) -> None:
        """`settings`: fixed, or a callable giving the settings in force (run-time overrides
        apply from the next failure)."""
        self._queries = queries
        self._settings = settings if callable(settings) else lambda: settings
        self._purged_at = 0.0

    def check(self, email: str, address: str | None, now: float) -> None:
        """Raises RateLimited while the email or the address is locked (no password is checked
        then, so guessing stops until the lock ends)."""
        until = self._queries.locked_until(throttle_keys(email, address), now)
        if until is not None:
            wait = math.ceil(until - now)
            raise RateLimited(
                f"too many failed logins; try again in {wait} s",
                retry_after=wait,
                code="login_throttled",
            )

    def failed(self, email: str, address: str | None, now: float) -> list[tuple[str, float]]:
        """Count a failure for the email and the address; the (key, until) locks it started."""
        s = self._settings()
        locks = []
        for key in throttle_keys(email, address):
            until = self._queries.record_failure(
                key,
                now,
                window=s.login_window_minutes * 60,
                limit=s.login_max_failures,
                lock=s.login_lock_minutes * 60,
                lock_max=s.login_lock_max_minutes * 60,
            )
            if until is not None:
                locks.append((key, until))
        if now - self._purged_at >= PURGE_EVERY:
            # Unknown emails are counted too, so a spray would otherwise grow the table forever.
            self._purged_at = now
            self._queries.purge_failures(now - LOCKOUT_MEMORY)
        return locks

    def succeeded(self, email: str) -> None:
        """A successful login clears its email's count; the address keeps its own, so logging
        into one's own account does not reset a spray against others."""
        self._queries.clear_failures(f"email:{email}")
