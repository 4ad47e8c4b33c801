"""Availability (A1.2) and processing integrity (PI1.x): failure modes and error rates, every
interaction recorded, blocked requests never forwarded, outputs screened, and the trail's
integrity verified against its signed checkpoints."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from sqlalchemy import case, func, select

from signalvault.evidence.report.context import ReportContext
from signalvault.evidence.report.model import Criterion, Gap
from signalvault.evidence.report.probe import table
from signalvault.store.schema import audit_records

_t = audit_records.c
ERROR_RATE_LIMIT = 0.05  # provider errors above this share of forwarded requests are a gap
NOT_FORWARDED = ("blocked", "rejected", "unauthorized", "rate_limited")


def a1_2(ctx: ReportContext) -> Criterion:
    probe = ctx.probe
    rows, outcomes = probe.rows(
        "Interactions by outcome",
        select(_t.outcome, func.count())
        .where(probe.period.within(), _t.kind == "interaction")
        .group_by(_t.outcome),
    )
    counts = {r[0]: int(r[1]) for r in rows}
    forwarded = sum(n for outcome, n in counts.items() if outcome not in NOT_FORWARDED)
    failed = counts.get("provider_error", 0) + counts.get("stream_cut", 0)
    rate = failed / forwarded if forwarded else 0.0
    outcomes.table = table(["outcome", "count"], sorted(counts.items()))
    outcomes.figures = {
        "forwarded": forwarded,
        "provider_failures": failed,
        "error_rate": round(rate, 4),
        "success_rate": round(1 - rate, 4) if forwarded else None,
    }
    attempt_rows, attempts = probe.rows(
        "Retries, fallbacks and circuit-breaker skips (from each record's attempts)",
        select(_t.attempts).where(probe.period.within(), _t.attempts.is_not(None)),
    )
    tally: Counter[str] = Counter()
    for row in attempt_rows:
        for note in orjson.loads(row.attempts):
            tally["attempts"] += 1
            tally["retries"] += bool(note.get("retry"))
            tally["fallbacks"] += bool(note.get("fallback")) and not note.get("skipped")
            if note.get("skipped"):
                tally[f"skipped_{note['skipped']}"] += 1
    attempts.figures = dict(tally)
    resilience = probe.configuration(
        "Failure handling per provider: timeouts, retries, circuit breakers",
        "configuration: [[providers]]",
        len(ctx.settings.providers),
        table=table(
            ["provider", "timeout s", "retries", "breaker ratio", "cooldown s"],
            [
                [
                    p.name,
                    p.timeout_seconds,
                    p.max_retries,
                    p.breaker_failure_ratio,
                    p.breaker_cooldown_seconds,
                ]
                for p in ctx.settings.providers
            ],
        ),
        figures={
            "routes_with_fallbacks": sum(1 for r in ctx.settings.routes if len(r.targets) > 1)
        },
    )
    gaps = []
    if rate > ERROR_RATE_LIMIT:
        gaps.append(
            Gap(
                f"{rate:.1%} of forwarded requests failed at the provider "
                f"(limit {ERROR_RATE_LIMIT:.0%})",
                "add fallback targets to the routes ([[routes]] targets), review provider health",
            )
        )
    return Criterion(
        "A1.2",
        "Failure modes, recovery and availability",
        "availability",
        [outcomes, attempts, resilience],
        gaps,
    )


def pi1_2(ctx: ReportContext) -> Criterion:
    probe = ctx.probe
    stale_before = probe.now - ctx.settings.audit.seal_after_seconds
    rows, recorded = probe.rows(
        "Every request recorded before forwarding: records per API, and those left unfinished",
        select(_t.api, func.count(), func.sum(case((_t.outcome == "unknown", 1), else_=0)))
        .where(probe.period.within(), _t.kind == "interaction")
        .group_by(_t.api),
    )
    recorded.table = table(
        ["api", "records", "unfinished"], [[r[0], r[1], r[2] or 0] for r in rows]
    )
    stuck_rows, stuck = probe.rows(
        "Records still `unknown` after the longest request could last (lost in a crash)",
        select(_t.id).where(
            probe.period.within(), _t.outcome == "unknown", _t.created_at < stale_before
        ),
    )
    stuck.record_ids = [r.id for r in stuck_rows[:50]]
    gaps = []
    if stuck_rows:
        gaps.append(
            Gap(
                f"{len(stuck_rows)} interaction(s) never completed (gateway crashed mid-request)",
                "check the gateway's logs for crashes at those times; the records stay as evidence",
            )
        )
    return Criterion(
        "PI1.2",
        "Complete inputs: every interaction recorded",
        "processing integrity",
        [recorded, stuck],
        gaps,
    )


def pi1_3(ctx: ReportContext) -> Criterion:
    probe = ctx.probe
    rows, refused = probe.rows(
        "Refused requests (blocked, rejected, unauthorised, rate limited) and their provider calls",
        select(_t.id, _t.outcome, _t.attempts).where(
            probe.period.within(), _t.kind == "interaction", _t.outcome.in_(NOT_FORWARDED)
        ),
    )
    forwarded = [
        r.id
        for r in rows
        if r.attempts and any(not n.get("skipped") for n in orjson.loads(r.attempts))
    ]
    refused.figures = {**Counter(r.outcome for r in rows), "forwarded_anyway": len(forwarded)}
    refused.record_ids = forwarded[:50]
    gaps = []
    if forwarded:
        gaps.append(
            Gap(
                f"{len(forwarded)} refused request(s) show a provider call",
                "run `signalvault audit verify` and report a bug: refusals must never be forwarded",
            )
        )
    return Criterion(
        "PI1.3",
        "Processing: blocked requests never forwarded",
        "processing integrity",
        [refused],
        gaps,
    )


def pi1_4(ctx: ReportContext) -> Criterion:
    probe = ctx.probe
    rows, output = probe.rows(
        "Responses screened by output guardrails (findings per outcome)",
        select(_t.guardrails).where(
            probe.period.within(), _t.guardrails.like('%"direction":"output"%')
        ),
    )
    tally: Counter[str] = Counter()
    for row in rows:
        for e in orjson.loads(row.guardrails):
            if e.get("direction") == "output":
                tally[e.get("outcome", "?")] += 1
    output.figures = dict(tally)
    return Criterion("PI1.4", "Outputs screened before release", "processing integrity", [output])


def pi1_5(ctx: ReportContext) -> Criterion:
    probe = ctx.probe
    report = ctx.verification
    verified = probe.configuration(
        "Integrity of the whole trail re-derived from the stored records (audit verify)",
        "signalvault audit verify (every sealed record, Merkle root, signed checkpoints)",
        report.records_checked,
        figures={
            "status": report.status,
            "tree_size": report.tree_size,
            "root": report.root,
            "records_checked": report.records_checked,
            "tombstones": report.tombstones,
            "checkpoints_checked": report.checkpoints_checked,
            "unsealed": report.unsealed,
            "problems": report.counts,
        },
    )
    verified.trail_range = probe.trail_range
    gaps = []
    if report.status == "tampered":
        first = report.first()
        gaps.append(
            Gap(
                "the trail does not verify: " + (first.message if first else "see audit verify"),
                "run `signalvault audit verify` and investigate the named records",
            )
        )
    elif report.status == "suspicious":
        gaps.append(
            Gap(
                f"{report.counts.get('suspicious', 0)} record(s) left unsealed past the seal "
                "window",
                "make sure a gateway runs (it seals), or run `signalvault audit seal`",
            )
        )
    if probe.checkpoint is None and probe.records_in_period:
        gaps.append(Gap("no signed checkpoint covers the period", "run `signalvault audit seal`"))
    return Criterion(
        "PI1.5", "Stored data complete and unaltered", "processing integrity", [verified], gaps
    )


CRITERIA: tuple[Any, ...] = (a1_2, pi1_2, pi1_3, pi1_4, pi1_5)
