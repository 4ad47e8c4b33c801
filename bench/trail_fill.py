"""A realistic synthetic trail for the dashboard benches: a month of interactions across projects,
keys, end users and models, with guardrail evaluations, classifications and admin events.

Rows are written straight through the store's engine (ids are UUIDv7 built from each record's own
time, as the gateway writes them); random bytes stand in for the ciphertexts.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import orjson

from signalvault.store.sql import INSERT_RECORD, SqlStore
from signalvault.trail.audit import EMPTY_ROW

BATCH = 20_000
PROJECTS = ("checkout", "support-bot", "search", "analytics", "internal-tools")
PROJECT_WEIGHTS = (40, 30, 15, 10, 5)
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5", "text-embedding-3-small", "o3-mini")
MODEL_WEIGHTS = (45, 20, 20, 10, 5)
OUTCOMES = ("ok", "blocked", "provider_error", "rate_limited", "rejected", "unauthorized")
OUTCOME_WEIGHTS = (920, 20, 20, 15, 15, 10)
CLASSES = ("internal", "confidential", "restricted", "public")
CLASS_WEIGHTS = (78, 15, 3, 4)
ATTEMPTS = '[{"provider":"openai","model":"gpt-4o-mini","at_ms":1.0,"ms":400,"status":200}]'
KEYS = tuple(f"key_{i:016x}" for i in range(24))
REDACTED = [
    {
        "rule": "pii-input",
        "detector": "pii",
        "direction": "input",
        "action": "redact",
        "outcome": "redacted",
        "kinds": {"EMAIL": 1},
        "spans": [[0, 10, 30]],
        "ms": 0.2,
    }
]
BLOCKED = [
    {
        "rule": "secrets",
        "detector": "secrets",
        "direction": "input",
        "action": "block",
        "outcome": "blocked",
        "kinds": {"AWS_ACCESS_KEY": 1},
        "spans": [[0, 4, 24]],
        "ms": 0.1,
    }
]
PASSED = [
    {
        "rule": "secrets",
        "detector": "secrets",
        "direction": "input",
        "action": "block",
        "outcome": "pass",
        "kinds": {},
        "spans": [],
        "ms": 0.1,
    }
]


def record_id_at(moment: float, rng: random.Random) -> str:
    """A UUIDv7 for `moment`, as trail.audit.new_record_id makes them."""
    millis = int(moment * 1000)
    value = (millis << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64)
    value |= (0b10 << 62) | rng.getrandbits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def interaction(moment: float, rng: random.Random) -> dict[str, Any]:
    outcome = rng.choices(OUTCOMES, OUTCOME_WEIGHTS)[0]
    model = rng.choices(MODELS, MODEL_WEIGHTS)[0]
    guardrails = BLOCKED if outcome == "blocked" else REDACTED if rng.random() < 0.08 else PASSED
    prompt = rng.randint(20, 2000)
    completion = rng.randint(10, 800) if outcome == "ok" else 0
    latency = rng.lognormvariate(6.0, 0.6) if outcome not in ("blocked", "unauthorized") else 2.0
    return {
        **EMPTY_ROW,
        "id": record_id_at(moment, rng),
        "kind": "interaction",
        "created_at": moment,
        "completed_at": moment + latency / 1000,
        "project": rng.choices(PROJECTS, PROJECT_WEIGHTS)[0],
        "key_id": rng.choice(KEYS),
        "environment": "prod",
        "end_user": f"user-{rng.randint(1, 5000)}",
        "api": "chat",
        "provider": "openai" if model.startswith(("gpt", "o3", "text")) else "anthropic",
        "model_requested": model,
        "model_used": model,
        "is_stream": rng.random() < 0.4,
        "status_code": {"ok": 200, "blocked": 400, "rate_limited": 429, "unauthorized": 401}.get(
            outcome, 502
        ),
        "outcome": outcome,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "tokens_estimated": False,
        "latency_ms": latency,
        "ttfb_ms": latency / 3,
        "data_key_id": "dk_bench",
        "policy_version": 1,
        "guardrails": orjson.dumps(guardrails).decode(),
        "prompt_ct": os.urandom(300),
        "response_ct": os.urandom(600) if completion else None,
        "attempts": ATTEMPTS,
        "classification": rng.choices(CLASSES, CLASS_WEIGHTS)[0],
    }


def admin_event(moment: float, rng: random.Random) -> dict[str, Any]:
    return {
        **EMPTY_ROW,
        "id": record_id_at(moment, rng),
        "kind": "admin",
        "created_at": moment,
        "completed_at": moment,
        "is_stream": False,
        "outcome": "ok",
        "tokens_estimated": False,
        "actor": "account:owner@example.com",
        "details": orjson.dumps(
            {"action": "key.create", "target": rng.choice(KEYS), "before": None, "after": {}}
        ).decode(),
    }


def fill(store: SqlStore, count: int, days: float = 30.0, seed: int = 7) -> None:
    """`count` interactions spread evenly over the last `days`, one admin event per 1000."""
    rng = random.Random(seed)
    end = time.time()
    step = days * 86400 / count
    start = end - days * 86400
    with store.engine.begin() as conn:
        for first in range(0, count, BATCH):
            rows = []
            for i in range(first, min(count, first + BATCH)):
                moment = start + i * step
                rows.append(interaction(moment, rng))
                if i % 1000 == 0:
                    rows.append(admin_event(moment + step / 2, rng))
            conn.execute(INSERT_RECORD, rows)
