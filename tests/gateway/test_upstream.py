"""The rules under the provider calls, with fixed inputs and a fake clock: retryable answers,
full-jitter backoff, Retry-After parsing, the retry policy and the circuit breaker's states."""

from __future__ import annotations

import random

import pytest

from signalvault.config import load_settings
from signalvault.errors import ConfigError
from signalvault.gateway.upstream import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Breaker,
    BreakerPolicy,
    RetryPolicy,
    backoff_delay,
    parse_retry_after,
)
from signalvault.gateway.upstream.breaker import Breakers
from signalvault.gateway.upstream.retry import is_retryable_status


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        *[(status, True) for status in (500, 502, 503, 529, 408, 409, 429)],
        *[(status, False) for status in (400, 401, 403, 404, 413, 422)],
    ],
)
def test_only_transient_statuses_are_retried(status, retryable):
    assert is_retryable_status(status) is retryable


def test_backoff_is_full_jitter_under_a_doubling_cap():
    rng = random.Random(5)
    for retry, ceiling in [(0, 0.25), (1, 0.5), (2, 1.0), (3, 2.0), (10, 8.0), (500, 8.0)]:
        waits = [backoff_delay(retry, 0.25, 8.0, rng) for _ in range(2000)]
        assert all(0.0 <= w <= ceiling for w in waits)
        # Spread over the whole range, not clustered at the cap: that is what "full" means.
        assert min(waits) < ceiling * 0.05 and max(waits) > ceiling * 0.95


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": " 0 "}, 0.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "junk", "retry-after": "9"}, 9.0),
        ({"retry-after": "Thu, 26 Nov 2026 00:00:10 GMT"}, 10.0),
        ({"retry-after": "Wed, 25 Nov 2026 23:59:00 GMT"}, 0.0),  # a date in the past
        ({"retry-after": "-4"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": ""}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(headers, expected):
    now = 1795651200.0  # 2026-11-26T00:00:00Z
    assert parse_retry_after(headers, now=now) == expected


def test_retry_policy_bounds_count_budget_and_retry_after():
    policy = RetryPolicy(
        max_retries=2,
        budget_seconds=5.0,
        backoff_base_seconds=0.5,
        backoff_max_seconds=4.0,
        retry_after_max_seconds=3.0,
    )
    rng = random.Random(1)
    first = policy.next_wait(0, None, 0.0, rng)
    assert first is not None and 0.0 <= first <= 0.5
    assert policy.next_wait(2, None, 0.0, rng) is None  # retries used up
    assert policy.next_wait(0, 2.0, 0.0, rng) == 2.0  # the provider's word, not the backoff
    assert policy.next_wait(0, 3.5, 0.0, rng) is None  # longer than worth waiting
    assert policy.next_wait(1, 2.0, 3.5, rng) is None  # would end past the budget
    assert policy.next_wait(1, 2.0, 3.0, rng) == 2.0  # ends exactly at the budget
    assert RetryPolicy(max_retries=0).next_wait(0, None, 0.0, rng) is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


POLICY = BreakerPolicy(failure_ratio=0.5, min_requests=4, window_seconds=10.0, cooldown_seconds=5.0)


def run(breaker: Breaker, failed: bool) -> None:
    assert breaker.is_available()
    breaker.record(breaker.acquire(), failed)


def test_breaker_opens_at_the_failure_ratio_once_enough_calls_are_seen():
    clock = FakeClock()
    breaker = Breaker("p", POLICY, clock)
    for _ in range(3):
        run(breaker, failed=True)
    assert breaker.state == CLOSED  # 3 calls: below min_requests
    run(breaker, failed=False)
    assert breaker.state == CLOSED  # the success did not cross anything
    run(breaker, failed=True)  # 4 of 5 failed
    assert breaker.state == OPEN and not breaker.is_available()
    assert breaker.remaining_cooldown() == 5.0


def test_breaker_stays_closed_below_the_ratio_and_forgets_old_calls():
    clock = FakeClock()
    breaker = Breaker("p", POLICY, clock)
    for failed in [False, False, True, False, True, False, False, True]:
        run(breaker, failed)
    assert breaker.state == CLOSED  # 3 of 8
    clock.now += 11  # the window has passed: those calls no longer count
    for _ in range(3):
        run(breaker, failed=True)
    assert breaker.state == CLOSED
    run(breaker, failed=True)
    assert breaker.state == OPEN


def test_breaker_half_opens_after_the_cooldown_and_a_probe_success_closes_it():
    clock = FakeClock()
    breaker = Breaker("p", POLICY, clock)
    for _ in range(4):
        run(breaker, failed=True)
    clock.now += 4.9
    assert breaker.state == OPEN and breaker.remaining_cooldown() == pytest.approx(0.1)
    clock.now += 0.1
    assert breaker.state == HALF_OPEN
    probe = breaker.acquire()
    assert not breaker.is_available()  # one probe at a time
    breaker.record(probe, failed=False)
    assert breaker.state == CLOSED and breaker.is_available()
    for _ in range(3):
        run(breaker, failed=True)
    assert breaker.state == CLOSED  # the old failures were cleared on closing


def test_a_failed_probe_reopens_for_a_full_cooldown():
    clock = FakeClock()
    breaker = Breaker("p", POLICY, clock)
    for _ in range(4):
        run(breaker, failed=True)
    clock.now += 5
    probe = breaker.acquire()
    clock.now += 1
    breaker.record(probe, failed=True)
    assert breaker.state == OPEN and breaker.remaining_cooldown() == 5.0


def test_results_from_before_a_transition_are_ignored():
    clock = FakeClock()
    breaker = Breaker("p", POLICY, clock)
    slow = breaker.acquire()  # let through while closed, answers much later
    for _ in range(4):
        run(breaker, failed=True)
    clock.now += 5
    assert breaker.state == HALF_OPEN
    breaker.record(slow, failed=False)  # must not close the breaker: it is no probe
    assert breaker.state == HALF_OPEN


def test_a_released_probe_frees_its_slot():
    clock = FakeClock()
    breaker = Breaker("p", POLICY, clock)
    for _ in range(4):
        run(breaker, failed=True)
    clock.now += 5
    probe = breaker.acquire()
    assert not breaker.is_available()
    breaker.release(probe)  # the request was cancelled: no verdict
    assert breaker.is_available() and breaker.state == HALF_OPEN


def test_breakers_exist_per_provider_and_per_deployment():
    clock = FakeClock()
    breakers = Breakers({"a": POLICY, "b": POLICY}, clock)
    provider, deployment = breakers.for_target("a", "gpt-x")
    assert breakers.for_target("a", "gpt-x") == (provider, deployment)
    for _ in range(4):
        run(deployment, failed=True)
    assert breakers.states() == {"a": CLOSED, "b": CLOSED, "a:gpt-x": OPEN}


PROVIDER_TOML = """
[[providers]]
name = "p"
base_url = "http://127.0.0.1:1/v1"
"""


def test_resilience_settings_load_from_the_file(tmp_path):
    path = tmp_path / "signalvault.toml"
    path.write_text(
        PROVIDER_TOML
        + "idle_timeout_seconds = 2.5\nmax_retries = 0\nbreaker_half_open_probes = 3\n"
    )
    [provider] = load_settings(path, environ={}).providers
    assert (provider.idle_timeout_seconds, provider.max_retries) == (2.5, 0)
    assert provider.breaker_half_open_probes == 3
    assert provider.first_byte_timeout_seconds == 300.0  # untouched defaults


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("idle_timeout_seconds = 0", "idle_timeout_seconds must be positive"),
        ("connect_timeout_seconds = -1", "connect_timeout_seconds must be positive"),
        ("max_retries = -1", "max_retries and retry_budget_seconds must be >= 0"),
        ("breaker_failure_ratio = 1.5", r"breaker_failure_ratio must be in \(0, 1\]"),
        ("breaker_failure_ratio = 0", r"breaker_failure_ratio must be in \(0, 1\]"),
        ("breaker_min_requests = 0", "must be at least 1"),
        ("retry_after_max_seconds = -0.5", "retry_after_max_seconds must be >= 0"),
    ],
)
def test_impossible_resilience_settings_are_refused(tmp_path, line, message):
    path = tmp_path / "signalvault.toml"
    path.write_text(PROVIDER_TOML + line + "\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(path, environ={})
