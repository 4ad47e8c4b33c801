"""Traffic aggregates for the overview: interactions grouped by time bucket and by what decides
who may see them (project, key), so the caller can narrow to a reader's records exactly and
cache finished buckets for everyone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine, Integer, and_, case, cast, func, literal, or_, select

from signalvault.store.schema import audit_records

INTERACTION = "interaction"
# Upper bounds (ms) of the latency histogram bins; the last bin is open-ended.
LATENCY_BINS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
FIRED = ("blocked", "redacted", "logged", "error")


@dataclass(slots=True)
class Tally:
    """What one time bucket holds for one (project, key, model, outcome)."""

    requests: int = 0
    tokens: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BINS) + 1))


@dataclass(slots=True)
class Bucket:
    """One time bucket: tallies by (project, key_id, model, outcome); guardrail findings by
    (project, key_id) and then by finding type; records with a redaction by (project, key_id)."""

    tallies: dict[tuple[str | None, str | None, str | None, str], Tally] = field(
        default_factory=dict
    )
    findings: dict[tuple[str | None, str | None], dict[str, int]] = field(default_factory=dict)
    redacted: dict[tuple[str | None, str | None], int] = field(default_factory=dict)


def _latency_bin() -> Any:
    t = audit_records.c
    whens = [(t.latency_ms < bound, index) for index, bound in enumerate(LATENCY_BINS)]
    return case(*whens, else_=len(LATENCY_BINS))


def traffic_buckets(engine: Engine, start: float, size: float, count: int) -> list[Bucket]:
    """`count` buckets of `size` seconds from `start`: interactions by the time they began."""
    t = audit_records.c
    end = start + size * count
    index = cast(func.floor((t.created_at - literal(start)) / literal(size)), Integer)
    model = func.coalesce(t.model_used, t.model_requested)
    window = and_(t.kind == INTERACTION, t.created_at >= start, t.created_at < end)
    latency = case((t.latency_ms.is_(None), -1), else_=_latency_bin())
    grouped = (
        select(
            index.label("b"),
            t.project,
            t.key_id,
            model.label("model"),
            t.outcome,
            latency.label("lbin"),
            func.count().label("n"),
            func.coalesce(func.sum(t.total_tokens), 0).label("tokens"),
        )
        .where(window)
        .group_by(index, t.project, t.key_id, model, t.outcome, latency)
    )
    fired = select(index.label("b"), t.project, t.key_id, t.guardrails).where(
        window, or_(*(t.guardrails.like(f'%"outcome":"{name}"%') for name in FIRED))
    )
    buckets = [Bucket() for _ in range(count)]
    with engine.connect() as conn:
        for row in conn.execute(grouped):
            if not 0 <= row.b < count:
                continue
            key = (row.project, row.key_id, row.model, row.outcome)
            tally = buckets[row.b].tallies.setdefault(key, Tally())
            tally.requests += row.n
            tally.tokens += int(row.tokens)
            if row.lbin >= 0:
                tally.latency[row.lbin] += row.n
        for row in conn.execute(fired):
            if 0 <= row.b < count:
                _add_findings(buckets[row.b], (row.project, row.key_id), row.guardrails)
    return buckets


def _add_findings(bucket: Bucket, scope: tuple[str | None, str | None], raw: str) -> None:
    try:
        evaluations = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return  # a damaged record is reported by verification, not by a chart
    kinds = bucket.findings.setdefault(scope, {})
    redacted = False
    for evaluation in evaluations:
        if evaluation.get("outcome") in (None, "pass"):
            continue
        redacted = redacted or evaluation.get("outcome") == "redacted"
        for kind, number in (evaluation.get("kinds") or {}).items():
            kinds[kind] = kinds.get(kind, 0) + int(number)
    if redacted:
        bucket.redacted[scope] = bucket.redacted.get(scope, 0) + 1
