"""Limits kept in this process's memory: exact, no external service, not shared between workers.

One event loop owns a limiter; every method runs to completion without awaiting, so a check and
its update are never interleaved with another request's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from signalvault.gateway.limits.buckets import Charge, Denial, drain

SWEEP_EVERY = 60.0  # seconds between passes that drop idle buckets (memory stays bounded)


class MemoryLimiter:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._rates: dict[str, tuple[float, float, float]] = {}  # bucket -> (level, at, empty at)
        self._quotas: dict[str, tuple[int, float]] = {}  # bucket -> (used, window end)
        self._swept = clock()

    async def acquire(self, charges: Sequence[Charge]) -> Denial | None:
        now = self._clock()
        self._sweep(now)
        levels = [self._level(charge, now) for charge in charges]
        for index, (charge, level) in enumerate(zip(charges, levels, strict=True)):
            denial = charge.deny(level, now, index)
            if denial is not None:
                return denial
        self._apply(charges, levels, now)
        return None

    def adjust(self, charges: Sequence[Charge]) -> None:
        now = self._clock()
        self._apply(charges, [self._level(charge, now) for charge in charges], now)

    async def close(self) -> None:
        self._rates.clear()
        self._quotas.clear()

    def _level(self, charge: Charge, now: float) -> float:
        if charge.window_end is None:
            state = self._rates.get(charge.bucket)
            if state is None:
                return 0.0
            return drain(state[0], now - state[1], charge.limit, charge.period)
        used = self._quotas.get(charge.bucket)
        if used is None:
            return float(max(charge.seed or 0, 0))
        return float(used[0])

    def _apply(self, charges: Sequence[Charge], levels: Sequence[float], now: float) -> None:
        for charge, level in zip(charges, levels, strict=True):
            if charge.window_end is None:
                level = max(level + charge.cost, 0.0)
                empty_at = now + level * charge.period / charge.limit
                self._rates[charge.bucket] = (level, now, empty_at)
            else:
                self._quotas[charge.bucket] = (max(int(level) + charge.cost, 0), charge.window_end)

    def _sweep(self, now: float) -> None:
        """Forget buckets that hold nothing any more: drained rates, quotas of past windows."""
        if now - self._swept < SWEEP_EVERY:
            return
        self._swept = now
        self._rates = {b: s for b, s in self._rates.items() if s[2] > now}
        self._quotas = {b: q for b, q in self._quotas.items() if q[1] > now}
