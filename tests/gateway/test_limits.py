"""Rate limits and budgets: the in-memory limiter on a fake clock, the Limits service, and the
gateway refusing (429 + Retry-After, native shapes, provider untouched) and correcting reservations.
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest

from signalvault.config import LimitsSettings, Secret, ServerSettings, Settings
from signalvault.crypto.gateway_keys import GatewayKey
from signalvault.errors import LimiterUnavailable, RateLimited
from signalvault.gateway.limits import Charge, Limits
from signalvault.gateway.limits.memory import MemoryLimiter
from signalvault.server import BackgroundServer, http_protocol
from tests.conftest import make_settings, records, running_gateway

pytestmark = pytest.mark.anyio

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}
MESSAGES = {
    "model": "claude-3-5-haiku",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hello there"}],
}
LONG_REPLY = " ".join(["word"] * 400)  # the prompt carries it too: ~400 tokens each way


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def gateway_key(**overrides: object) -> GatewayKey:
    values: dict[str, object] = {
        "id": "key_1",
        "name": "n",
        "project": "p",
        "environment": "dev",
        "prefix": "sv-dev-abcdef",
        "models": (),
        "rpm": None,
        "tpm": None,
        "expires_at": None,
        "revoked_at": None,
        "created_at": 0.0,
        "created_by": "test",
    }
    return GatewayKey(**{**values, **overrides})  # type: ignore[arg-type]


# -- the in-memory limiter -----------------------------------------------------------------------
async def test_rate_bucket_admits_a_burst_then_one_per_interval():
    clock = Clock()
    limiter = MemoryLimiter(clock)
    rpm = [Charge("k:rpm", 3, 1)]
    for _ in range(3):
        assert await limiter.acquire(rpm) is None
    denial = await limiter.acquire(rpm)
    assert denial is not None and denial.index == 0
    assert denial.retry_after == pytest.approx(20.0)  # 60 s / 3 requests
    clock.now += 19.9
    assert await limiter.acquire(rpm) is not None
    clock.now += 0.1
    assert await limiter.acquire(rpm) is None
    assert await limiter.acquire(rpm) is not None


async def test_a_denied_request_takes_nothing_from_any_bucket():
    limiter = MemoryLimiter(Clock())
    assert await limiter.acquire([Charge("a", 1, 1)]) is None
    denial = await limiter.acquire([Charge("b", 5, 1), Charge("a", 1, 1)])
    assert denial is not None and denial.index == 1
    for _ in range(5):  # "b" was not charged by the refused request
        assert await limiter.acquire([Charge("b", 5, 1)]) is None
    assert await limiter.acquire([Charge("b", 5, 1)]) is not None


async def test_adjust_refunds_and_charges_the_difference():
    clock = Clock()
    limiter = MemoryLimiter(clock)
    tpm = Charge("k:tpm", 100, 80)
    assert await limiter.acquire([tpm]) is None
    assert await limiter.acquire([tpm.with_cost(30)]) is not None
    limiter.adjust([tpm.with_cost(-70)])  # used 10 of the 80 reserved
    assert await limiter.acquire([tpm.with_cost(90)]) is None
    limiter.adjust([tpm.with_cost(50)])  # used 50 more than reserved: 150 in a 100 bucket
    denial = await limiter.acquire([tpm.with_cost(1)])
    assert denial is not None and denial.retry_after == pytest.approx(
        30.6
    )  # (150 + 1 - 100) s * 0.6
    limiter.adjust([tpm.with_cost(-1000)])  # never below empty
    assert await limiter.acquire([tpm.with_cost(100)]) is None


async def test_a_charge_larger_than_the_limit_never_fits():
    limiter = MemoryLimiter(Clock())
    denial = await limiter.acquire([Charge("k:tpm", 100, 101)])
    assert denial is not None and denial.retry_after == 60.0


async def test_quota_starts_from_its_seed_and_retries_at_the_window_end():
    clock = Clock()
    limiter = MemoryLimiter(clock)
    end = clock.now + 3600
    assert await limiter.acquire([Charge("q:1", 100, 30, window_end=end, seed=60)]) is None
    # The seed counts only when the counter does not exist yet.
    assert await limiter.acquire([Charge("q:1", 100, 10, window_end=end, seed=0)]) is None
    denial = await limiter.acquire([Charge("q:1", 100, 1, window_end=end)])
    assert denial is not None and denial.retry_after == pytest.approx(3600)
    clock.now += 1000.0  # a quota does not drain with time
    assert await limiter.acquire([Charge("q:1", 100, 1, window_end=end)]) is not None


async def test_idle_buckets_are_forgotten():
    clock = Clock()
    limiter = MemoryLimiter(clock)
    for user in range(100):
        await limiter.acquire(
            [Charge(f"u:{user}", 10, 1), Charge(f"q:{user}", 9, 1, window_end=clock.now + 30)]
        )
    clock.now += 61.0
    await limiter.acquire([Charge("u:new", 10, 1)])
    assert len(limiter._rates) == 1 and not limiter._quotas


# -- the Limits service --------------------------------------------------------------------------
class Refusing:
    """A limiter that must not be called (or is unreachable)."""

    async def acquire(self, charges):
        raise LimiterUnavailable("unreachable")

    def adjust(self, charges):
        raise AssertionError("nothing was reserved")

    async def close(self) -> None:
        pass


def limits_over(limiter, clock=None, usage=lambda key_id, since: 0, **settings) -> Limits:
    return Limits(
        LimitsSettings(**settings),
        limiter,
        count_tokens=lambda text, model: len(text.split()),
        usage=usage,
        clock=clock or Clock(),
    )


async def test_nothing_to_limit_means_the_limiter_is_not_touched():
    limits = limits_over(Refusing())
    assert not limits.applies(gateway_key(), "alice")
    assert not limits.applies(None, "alice")
    with_users = limits_over(Refusing(), user_rpm=5)
    assert with_users.applies(gateway_key(), "alice")
    assert not with_users.applies(gateway_key(), None)
    assert limits.applies(gateway_key(budget_tokens=10), None)


async def test_reservation_is_the_prompt_plus_max_tokens_or_the_default_estimate():
    limits = limits_over(MemoryLimiter(Clock()), output_tokens_estimate=7)
    key = gateway_key(tpm=1000)
    payload = {"messages": [{"role": "user", "content": "one two three"}]}
    assert (await limits.reserve(key, None, "chat", payload, "gpt-4o")).reserved == 3 + 7
    capped = {**payload, "max_completion_tokens": 40}
    assert (await limits.reserve(key, None, "chat", capped, "gpt-4o")).reserved == 43
    embed = {"input": "one two"}
    assert (await limits.reserve(key, None, "embeddings", embed, "e")).reserved == 2


async def test_per_user_limits_are_per_user_and_never_name_the_user():
    limiter = MemoryLimiter(Clock())
    limits = limits_over(limiter, user_rpm=1)
    key = gateway_key()
    await limits.reserve(key, "alice@example.com", "chat", {}, None)
    with pytest.raises(RateLimited) as refused:
        await limits.reserve(key, "alice@example.com", "chat", {}, None)
    assert "alice" not in refused.value.message and refused.value.retry_after == pytest.approx(60)
    await limits.reserve(key, "bob", "chat", {}, None)
    await limits.reserve(gateway_key(project="other"), "alice@example.com", "chat", {}, None)
    assert not any("alice" in bucket for bucket in limiter._rates)


async def test_budget_is_seeded_once_from_the_store_and_renews_next_month():
    seen: list[tuple[str, float]] = []

    def usage(key_id: str, since: float) -> int:
        seen.append((key_id, since))
        return 95

    clock = Clock(datetime(2026, 3, 31, 23, 0, tzinfo=UTC).timestamp())
    limits = limits_over(MemoryLimiter(clock), clock, usage, output_tokens_estimate=5)
    key = gateway_key(budget_tokens=100)
    await limits.reserve(key, None, "chat", {}, None)  # 95 + 5 fits exactly
    with pytest.raises(RateLimited) as refused:
        await limits.reserve(key, None, "chat", {}, None)
    assert refused.value.code == "budget_exceeded"
    assert refused.value.retry_after == pytest.approx(3600)  # until 2026-04-01T00:00Z
    assert "2026-04-01T00:00:00Z" in refused.value.message
    assert seen == [("key_1", datetime(2026, 3, 1, tzinfo=UTC).timestamp())]
    clock.now += 3600
    await limits.reserve(key, None, "chat", {}, None)  # a new month: seeded again, from April 1
    assert seen[-1][1] == datetime(2026, 4, 1, tzinfo=UTC).timestamp()


async def test_settle_corrects_every_token_bucket():
    clock = Clock()
    limiter = MemoryLimiter(clock)
    limits = limits_over(limiter, clock, user_tpm=100, output_tokens_estimate=50)
    key = gateway_key(tpm=100, budget_tokens=1000)
    reservation = await limits.reserve(key, "alice", "chat", {}, None)
    assert reservation.reserved == 50 and len(reservation.tokens) == 3
    limits.settle(reservation, 5)
    assert sorted(level for level, _, _ in limiter._rates.values()) == [5.0, 5.0]
    assert [used for used, _ in limiter._quotas.values()] == [5]


async def test_unreachable_limiter_fails_closed_or_passes_visibly_when_open():
    with pytest.raises(LimiterUnavailable):
        await limits_over(Refusing()).reserve(gateway_key(rpm=5), None, "chat", {}, None)
    limits = limits_over(Refusing(), failure_mode="open")
    reservation = await limits.reserve(gateway_key(rpm=5), None, "chat", {}, None)
    assert reservation.is_bypassed and not reservation.tokens
    limits.settle(reservation, 10)  # nothing reserved, nothing to correct


# -- through the gateway -------------------------------------------------------------------------
def with_limits(settings: Settings, **limits: object) -> Settings:
    return replace(settings, limits=LimitsSettings(**limits))  # type: ignore[arg-type]


def limited_key(app, **limits: object) -> str:
    _, secret = app.services.keyring.create(name="limited", environment="dev", **limits)
    return secret


async def test_requests_per_minute_answer_429_with_retry_after_in_openai_shape(settings, mock):
    async with running_gateway(settings) as (app, client, _):
        key = limited_key(app, rpm=2)
        started = time.monotonic()
        for _ in range(2):
            ok = await client.post("/v1/chat/completions", json=CHAT, headers=auth(key))
            assert ok.status_code == 200
        refused = await client.post("/v1/chat/completions", json=CHAT, headers=auth(key))
        elapsed = time.monotonic() - started
        assert refused.status_code == 429
        # A request slot comes back every 30 s, counted from the first request: the wait is 30 s
        # less the time these took (a loaded machine took over half a second: "29").
        assert math.floor(30 - elapsed) <= int(refused.headers["retry-after"]) <= 30
        error = refused.json()["error"]
        assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
        assert "2 requests per minute" in error["message"]
        assert mock.stats()["total"] == 2  # the refused request never reached the provider
        record = records(app)[-1]
        assert record["id"] == refused.headers["x-signalvault-request-id"]
        assert record["outcome"] == "rate_limited" and record["status_code"] == 429
        assert record["error_code"] == "rate_limit_exceeded" and record["prompt_ct"] is None


async def test_requests_per_minute_answer_429_in_anthropic_shape(settings, mock):
    async with running_gateway(settings) as (app, client, _):
        key = limited_key(app, rpm=1)
        ok = await client.post("/v1/messages", json=MESSAGES, headers={"x-api-key": key})
        assert ok.status_code == 200
        refused = await client.post("/v1/messages", json=MESSAGES, headers={"x-api-key": key})
        assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
        body = refused.json()
        assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
        assert mock.stats()["total"] == 1


async def test_keys_without_limits_are_not_limited(client, api_key, mock):
    for _ in range(5):
        response = await client.post("/v1/chat/completions", json=CHAT, headers=auth(api_key))
        assert response.status_code == 200
    assert mock.stats()["total"] == 5


async def test_token_reservation_is_refunded_after_a_json_answer(settings, mock):
    # Each request reserves ~902 of 1000 tokens but uses ~10: only the correction admits the second.
    body = {**CHAT, "max_tokens": 900}
    async with running_gateway(settings) as (app, client, _):
        key = limited_key(app, tpm=1000)
        for _ in range(3):
            response = await client.post("/v1/chat/completions", json=body, headers=auth(key))
            assert response.status_code == 200
        assert mock.stats()["total"] == 3


async def test_token_reservation_is_refunded_after_a_stream(settings, mock):
    body = {**CHAT, "max_tokens": 900, "stream": True}
    async with running_gateway(settings) as (app, client, _):
        key = limited_key(app, tpm=1000)
        for _ in range(3):
            async with client.stream(
                "POST", "/v1/chat/completions", json=body, headers=auth(key)
            ) as response:
                assert response.status_code == 200
                await response.aread()
        assert [r["outcome"] for r in records(app)] == ["ok"] * 3


async def test_token_reservation_is_refunded_when_the_provider_fails(tmp_path, mock):
    settings = make_settings(tmp_path, "http://127.0.0.1:9/v1")  # nothing listens there
    body = {**CHAT, "max_tokens": 900}
    async with running_gateway(settings) as (app, client, _):
        key = limited_key(app, tpm=1000)
        for _ in range(2):
            response = await client.post("/v1/chat/completions", json=body, headers=auth(key))
            assert response.status_code == 502


async def test_usage_beyond_the_reservation_is_charged(settings, mock):
    body = {
        "model": "gpt-4o-mini",
        "max_tokens": 1,
        "messages": [{"role": "user", "content": f"[[mock:reply={LONG_REPLY}]]"}],
    }
    async with running_gateway(settings) as (app, client, _):
        # Reserves ~410 of 500, uses ~820: the next small request (3 tokens) waits ~40 s.
        key = limited_key(app, tpm=500)
        first = await client.post("/v1/chat/completions", json=body, headers=auth(key))
        assert first.status_code == 200
        assert records(app)[-1]["total_tokens"] > 800
        small = {**CHAT, "max_tokens": 1}
        refused = await client.post("/v1/chat/completions", json=small, headers=auth(key))
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 30
        assert mock.stats()["total"] == 1


async def test_monthly_budget_is_enforced_and_survives_a_restart(settings, mock):
    body = {
        "model": "gpt-4o-mini",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": f"[[mock:reply={LONG_REPLY}]]"}],
    }
    async with running_gateway(settings) as (app, client, _):
        # Reserves ~410 of 1000 and uses ~820; the next request reserves ~260 and does not fit.
        key = limited_key(app, budget_tokens=1000)
        assert (
            await client.post("/v1/chat/completions", json=body, headers=auth(key))
        ).status_code == 200
        refused = await client.post("/v1/chat/completions", json=CHAT, headers=auth(key))
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "budget_exceeded"
        assert int(refused.headers["retry-after"]) >= 1
    # A new process reads the month's usage from the audit trail.
    async with running_gateway(settings) as (app, client, _):
        again = await client.post("/v1/chat/completions", json=CHAT, headers=auth(key))
        assert again.status_code == 429 and again.json()["error"]["code"] == "budget_exceeded"
    assert mock.stats()["total"] == 1


async def test_end_user_limits_apply_per_end_user(settings, mock):
    async with running_gateway(with_limits(settings, user_rpm=1)) as (_, client, key):
        alice = {**auth(key), "X-SignalVault-User": "alice"}
        assert (
            await client.post("/v1/chat/completions", json=CHAT, headers=alice)
        ).status_code == 200
        refused = await client.post("/v1/chat/completions", json=CHAT, headers=alice)
        assert refused.status_code == 429 and "each end user" in refused.json()["error"]["message"]
        as_field = await client.post(
            "/v1/chat/completions", json={**CHAT, "user": "alice"}, headers=auth(key)
        )
        assert as_field.status_code == 429  # the same end user, named in the body
        bob = {**auth(key), "X-SignalVault-User": "bob"}
        assert (
            await client.post("/v1/chat/completions", json=CHAT, headers=bob)
        ).status_code == 200
        for _ in range(2):  # no end user: no end-user limit
            nobody = await client.post("/v1/chat/completions", json=CHAT, headers=auth(key))
            assert nobody.status_code == 200
        assert mock.stats()["total"] == 4


async def test_unreachable_redis_fails_closed_with_503(settings, mock):
    closed = with_limits(settings, redis_url=Secret("redis://127.0.0.1:9/0"))
    async with running_gateway(closed) as (app, client, _):
        key = limited_key(app, rpm=100)
        response = await client.post("/v1/messages", json=MESSAGES, headers={"x-api-key": key})
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "api_error"
        assert records(app)[-1]["outcome"] == "rejected"
        assert records(app)[-1]["error_code"] == "rate_limiter_unavailable"
    assert mock.stats()["total"] == 0


# -- slow and oversized requests -----------------------------------------------------------------
async def test_a_slow_body_gets_408_and_is_recorded(settings, mock):
    slow = replace(settings, server=ServerSettings(body_timeout_seconds=0.2))
    async with running_gateway(slow) as (app, _, key):
        sent: list[dict] = []
        headers = [
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
        ]

        async def receive() -> dict:
            if not hasattr(receive, "called"):
                receive.called = True  # type: ignore[attr-defined]
                return {"type": "http.request", "body": b'{"model": ', "more_body": True}
            await asyncio.sleep(5)
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/chat/completions",
            "headers": headers,
        }
        started = time.monotonic()
        await app(scope, receive, send)
        assert time.monotonic() - started < 2
        assert sent[0]["status"] == 408
        assert b"request_timeout" in sent[1]["body"]
        assert records(app)[-1]["outcome"] == "rejected"
        assert records(app)[-1]["status_code"] == 408
    assert mock.stats()["total"] == 0


async def _hello(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


def _exchange(port: int, data: bytes, wait: float = 0.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        if wait:
            time.sleep(wait)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            if b"ok" in b"".join(chunks):
                break
        return b"".join(chunks)


def test_request_heads_are_bounded_in_size_and_time():
    protocol = http_protocol(ServerSettings(max_header_bytes=2048, header_timeout_seconds=0.3))
    server = BackgroundServer(_hello, http=protocol).start()
    try:
        ok = _exchange(server.port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200") and ok.endswith(b"ok")
        big = b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 4096 + b"\r\n\r\n"
        assert _exchange(server.port, big).startswith(b"HTTP/1.1 431")
        # One header that never ends is refused once its reads pass the limit.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nx-endless: " + b"a" * 1500)
            time.sleep(0.05)
            sock.sendall(b"a" * 1500)
            assert sock.recv(65536).startswith(b"HTTP/1.1 431")
        # A head that never completes is cut off after the deadline, with nothing sent back.
        started = time.monotonic()
        assert _exchange(server.port, b"GET / HTTP/1.1\r\nhost: x\r\n") == b""
        assert 0.2 < time.monotonic() - started < 3
        # A head split over several reads under the limit is fine.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            for part in (b"GET / HTTP/1.1\r\n", b"host: x\r\n", b"x-a: 1\r\n\r\n"):
                sock.sendall(part)
                time.sleep(0.02)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        server.stop()


async def test_token_reservation_is_corrected_when_a_stream_is_cancelled(settings, mock):
    body = orjson.dumps({**CHAT, "max_tokens": 900, "stream": True})
    async with running_gateway(settings) as (app, _, _key):
        limited = limited_key(app, tpm=1000)
        first_chunk = asyncio.Event()

        async def receive() -> dict:
            if not first_chunk.is_set() and not hasattr(receive, "sent"):
                receive.sent = True  # type: ignore[attr-defined]
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client neither sends nor leaves
            return {}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                first_chunk.set()
                await asyncio.Event().wait()  # stuck writing: the task will be cancelled here

        headers = [
            (b"authorization", f"Bearer {limited}".encode()),
            (b"content-type", b"application/json"),
        ]
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/chat/completions",
            "headers": headers,
        }
        task = asyncio.ensure_future(app(scope, receive, send))
        await asyncio.wait_for(first_chunk.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Corrected to the few tokens the stream used, not the ~900 reserved before forwarding.
        [(level, _, _)] = app._limits._limiter._rates.values()
        assert 0 < level < 50


def test_limit_settings_come_from_the_environment_and_are_checked(tmp_path):
    from signalvault.config import load_settings
    from signalvault.errors import ConfigError

    environ = {
        "SIGNALVAULT_LIMITS_USER_RPM": "30",
        "SIGNALVAULT_LIMITS_FAILURE_MODE": "open",
        "SIGNALVAULT_REDIS_URL": "redis://cache:6379/0",
        "SIGNALVAULT_SERVER_BODY_TIMEOUT_SECONDS": "2.5",
    }
    loaded = load_settings(environ=environ, cwd=tmp_path)
    assert loaded.limits.user_rpm == 30 and loaded.limits.failure_mode == "open"
    assert loaded.limits.redis_url == Secret("redis://cache:6379/0")
    assert "cache" not in repr(loaded.limits)
    assert loaded.server.body_timeout_seconds == 2.5
    for name, value in [
        ("SIGNALVAULT_LIMITS_FAILURE_MODE", "maybe"),
        ("SIGNALVAULT_LIMITS_USER_TPM", "-1"),
        ("SIGNALVAULT_SERVER_MAX_HEADER_BYTES", "10"),
        ("SIGNALVAULT_SERVER_BODY_TIMEOUT_SECONDS", "0"),
    ]:
        with pytest.raises(ConfigError):
            load_settings(environ={name: value}, cwd=tmp_path)


def test_keys_create_stores_limits_and_budget_and_list_shows_them(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from signalvault.cli.main import cli

    monkeypatch.chdir(tmp_path)
    env = {"SIGNALVAULT_DATA_DIR": str(tmp_path / "data"), "SIGNALVAULT_CONFIG": ""}
    runner = CliRunner()
    created = runner.invoke(
        cli,
        [
            "keys",
            "create",
            "--name",
            "ci",
            "--env",
            "dev",
            "--rpm",
            "60",
            "--tpm",
            "9000",
            "--budget-tokens",
            "2000000",
            "--json",
        ],
        env=env,
    )
    assert created.exit_code == 0, created.output
    key = orjson.loads(created.output)
    assert (key["rpm"], key["tpm"], key["budget_tokens"]) == (60, 9000, 2000000)
    listed = runner.invoke(cli, ["keys", "list"], env=env)
    assert "budget_tokens" in listed.output and "2000000" in listed.output
    [row] = [
        orjson.loads(line)
        for line in runner.invoke(cli, ["keys", "list", "--json"], env=env).output.splitlines()
    ]
    assert row["budget_tokens"] == 2000000
    refused = runner.invoke(
        cli, ["keys", "create", "--name", "x", "--env", "dev", "--budget-tokens", "0"], env=env
    )
    assert refused.exit_code != 0 and "budget-tokens" in refused.output
