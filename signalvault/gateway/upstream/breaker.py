"""Circuit breakers: stop calling a provider (or one of its models) that keeps failing, probe it
again after a cooldown. Single event loop, no locks; the clock is a parameter for tests."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
_SLICES = 10  # the window ages out in tenths, not all at once
_MAX_DEPLOYMENTS = 1024  # callers choose model names; keep their breakers bounded

log = logging.getLogger("signalvault.upstream")
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_ratio: float = 0.5
    min_requests: int = 50
    window_seconds: float = 60.0
    cooldown_seconds: float = 30.0
    half_open_probes: int = 1


class Permit(NamedTuple):
    """Handed out with each call the breaker lets through; its result is recorded against it.
    (A tuple: one is made per call and breaker, on the hot path.)"""

    generation: int
    is_probe: bool


class _Window:
    """Call and failure counts over the last `seconds`, kept in `_SLICES` time slices."""

    def __init__(self, seconds: float) -> None:
        self._width = seconds / _SLICES
        self._slices = [[-_SLICES, 0, 0] for _ in range(_SLICES)]  # [slice number, calls, fails]

    def add(self, now: float, failed: bool) -> None:
        number = int(now // self._width)
        entry = self._slices[number % _SLICES]
        if entry[0] != number:
            entry[:] = [number, 0, 0]
        entry[1] += 1
        entry[2] += failed

    def counts(self, now: float) -> tuple[int, int]:
        """(calls, failures) in the window ending at `now`."""
        number = int(now // self._width)
        calls = failures = 0
        for slice_number, slice_calls, slice_failures in self._slices:
            if number - slice_number < _SLICES:
                calls += slice_calls
                failures += slice_failures
        return calls, failures

    def clear(self) -> None:
        for entry in self._slices:
            entry[:] = [-_SLICES, 0, 0]


class Breaker:
    """closed → (failure ratio reached) → open → (cooldown) → half_open → closed or open again.

    Every transition starts a new generation: results of calls let through under an earlier one
    are ignored, so a slow call from before the breaker opened cannot close it.
    """

    def __init__(
        self,
        name: str,
        policy: BreakerPolicy,
        clock: Clock,
        on_open: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self._on_open = on_open  # told each time this breaker opens (incidents: breaker storms)
        self._policy = policy
        self._clock = clock
        self._window = _Window(policy.window_seconds)
        self._state = CLOSED
        self._generation = 0
        self._opened_at = 0.0
        self._probes = 0  # probes in flight while half-open

    @property
    def state(self) -> str:
        if self._state == OPEN and self.remaining_cooldown() <= 0:
            self._move(HALF_OPEN)
        return self._state

    def remaining_cooldown(self) -> float:
        """Seconds until an open breaker lets probes through (0 when not open)."""
        if self._state != OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._policy.cooldown_seconds - self._clock())

    def is_available(self) -> bool:
        """Whether a call may go through now (without taking a probe slot)."""
        state = self.state
        return state == CLOSED or (
            state == HALF_OPEN and self._probes < self._policy.half_open_probes
        )

    def acquire(self) -> Permit:
        """Let one call through; call only after `is_available()` said yes."""
        if self._state == CLOSED:
            return Permit(self._generation, False)
        is_probe = self.state == HALF_OPEN
        if is_probe:
            self._probes += 1
        return Permit(self._generation, is_probe)

    def record(self, permit: Permit, failed: bool) -> None:
        if permit.generation != self._generation:
            return
        if permit.is_probe:
            self._probes -= 1
            self._move(OPEN if failed else CLOSED)
            return
        now = self._clock()
        self._window.add(now, failed)
        if not failed:
            return  # only a failure can tip the ratio over
        calls, failures = self._window.counts(now)
        policy = self._policy
        if calls >= policy.min_requests and failures >= policy.failure_ratio * calls:
            log.warning(
                "circuit breaker opened",
                extra={"breaker": self.name, "calls": calls, "failures": failures},
            )
            self._move(OPEN)

    def release(self, permit: Permit) -> None:
        """Give back a permit whose call ended without a verdict (the request was cancelled)."""
        if permit.is_probe and permit.generation == self._generation:
            self._probes -= 1

    def _move(self, state: str) -> None:
        if state == CLOSED and self._state != CLOSED:
            log.info("circuit breaker closed", extra={"breaker": self.name})
        elif state == OPEN and self._state == HALF_OPEN:
            log.warning(
                "circuit breaker reopened after a failed probe", extra={"breaker": self.name}
            )
        self._state = state
        self._generation += 1
        self._probes = 0
        self._window.clear()
        if state == OPEN:
            self._opened_at = self._clock()
            if self._on_open is not None:
                self._on_open(self.name)


class Breakers:
    """One breaker per provider and one per deployment (provider:model), created on first use."""

    def __init__(self, policies: dict[str, BreakerPolicy], clock: Clock) -> None:
        self._policies = policies
        self._clock = clock
        self.on_open: Callable[[str], None] | None = None  # set by the app (breaker storms)
        self._providers = {
            name: Breaker(name, p, clock, self._opened) for name, p in policies.items()
        }
        self._deployments: OrderedDict[str, Breaker] = OrderedDict()

    def for_target(self, provider: str, model: str) -> tuple[Breaker, Breaker]:
        name = f"{provider}:{model}"
        deployment = self._deployments.get(name)
        if deployment is None:
            deployment = Breaker(name, self._policies[provider], self._clock, self._opened)
            self._deployments[name] = deployment
            if len(self._deployments) > _MAX_DEPLOYMENTS:
                self._deployments.popitem(last=False)
        else:
            self._deployments.move_to_end(name)
        return self._providers[provider], deployment

    def _opened(self, name: str) -> None:
        if self.on_open is not None:
            self.on_open(name)

    def states(self) -> dict[str, str]:
        """State of every breaker by name: provider names, then `provider:model` deployments."""
        found = {name: breaker.state for name, breaker in self._providers.items()}
        found.update((name, breaker.state) for name, breaker in self._deployments.items())
        return found
