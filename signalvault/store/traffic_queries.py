"""Traffic aggregates for the overview: interactions grouped by time bucket and by what decides
who may see them (project, key), so the caller can narrow to a reader's records exactly and
cache finished buckets for everyone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine, Integer, and_, case, cast, func, literal, or_, select

from signalvault.store.record_queries import FIRED
from signalvault.store.schema import audit_records

INTERACTION = "interaction"
# Upper bounds (ms) of the latency histogram bins; the last bin is open-ended.
LATENCY_BINS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)


@dataclass(slots=True)
class Tally:
    """What one time bucket holds for one (project, key): the unit a reader may or may not see."""

    requests: int = 0
    tokens: int = 0
    redacted: int = 0  # records in which a guardrail redacted something
    outcomes: dict[str, int] = field(default_factory=dict)  # requests by outcome
    models: dict[str, list[int]] = field(default_factory=dict)  # model -> [requests, tokens]
    findings: dict[str, int] = field(default_factory=dict)  # finding type -> count
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BINS) + 1))


Scope = tuple[str | None, str | None]  # (project, key_id)


@dataclass(slots=True)
class Bucket:
    """One time bucket: a tally per (project, key_id)."""

    tallies: dict[Scope, Tally] = field(default_factory=dict)


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
            tally = buckets[row.b].tallies.setdefault((row.project, row.key_id), Tally())
            tally.requests += row.n
            tally.tokens += int(row.tokens)
            tally.outcomes[row.outcome] = tally.outcomes.get(row.outcome, 0) + row.n
            usage = tally.models.setdefault(row.model or "(none)", [0, 0])
            usage[0] += row.n
            usage[1] += int(row.tokens)
            if row.lbin >= 0:
                tally.latency[row.lbin] += row.n
        for row in conn.execute(fired):
            if 0 <= row.b < count:
                scope = (row.project, row.key_id)
                _add_findings(buckets[row.b].tallies.setdefault(scope, Tally()), row.guardrails)
    return buckets


def _add_findings(tally: Tally, raw: str) -> None:
    try:
        evaluations = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return  # a damaged record is reported by verification, not by a chart
    redacted = False
    for evaluation in evaluations:
        if evaluation.get("outcome") in (None, "pass"):
            continue
        redacted = redacted or evaluation.get("outcome") == "redacted"
        for kind, number in (evaluation.get("kinds") or {}).items():
            tally.findings[kind] = tally.findings.get(kind, 0) + int(number)
    tally.redacted += redacted
