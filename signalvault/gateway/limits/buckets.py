"""The arithmetic every limiter backend shares: rate buckets (GCRA) and calendar quotas.

Rate: GCRA in its "leaky bucket as a meter" form. A bucket holds up to `limit` units and drains
`limit` units per `period`; a charge is admitted when it fits. The long-run rate is exact; a full
burst of `limit` is allowed at once, so any single 60-second window can see at most just under
2 x limit (a full bucket, then everything that drained during the window). State is two numbers
per bucket, whatever the traffic.

Quota: a counter per calendar window (the month, UTC) that only a new window resets.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Charge:
    """Units to take from one bucket: a rate bucket, or a quota when `window_end` is set."""

    bucket: str
    limit: int
    cost: int
    period: float = 60.0
    window_end: float | None = None  # epoch seconds at which the quota window ends
    seed: int | None = None  # a quota's starting value when the counter does not exist yet

    def deny(self, level: float, now: float, index: int) -> Denial | None:
        """A Denial if `cost` does not fit on top of `level` (the bucket's current content)."""
        if level + self.cost <= self.limit:
            return None
        if self.window_end is not None:
            return Denial(index, max(self.window_end - now, 1.0))
        if self.cost > self.limit:  # can never fit; say "a period" rather than never
            return Denial(index, self.period)
        return Denial(index, (level + self.cost - self.limit) * self.period / self.limit)

    def with_cost(self, cost: int) -> Charge:
        return Charge(self.bucket, self.limit, cost, self.period, self.window_end, None)


@dataclass(frozen=True, slots=True)
class Denial:
    """Which charge did not fit, and how many seconds until it would."""

    index: int
    retry_after: float


def drain(level: float, elapsed: float, limit: int, period: float) -> float:
    """A rate bucket's content after `elapsed` seconds of draining."""
    return max(level - max(elapsed, 0.0) * limit / period, 0.0)
