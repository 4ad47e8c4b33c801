"""The report's pictures as data: traffic and findings over time (buckets of the period), and the
deployment's data flow (applications -> gateway -> providers, with regions and DPAs) from the
configuration and the keys."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from sqlalchemy import func, select

from signalvault.console import iso
from signalvault.evidence.report.context import ReportContext
from signalvault.store.schema import audit_records

_t = audit_records.c
DAY = 86_400.0
MAX_BUCKETS = 60
DETECTORS = ("pii", "secrets", "prompt_injection")
ERRORS = ("provider_error", "stream_cut", "gateway_error")
REFUSED = ("blocked", "rejected", "unauthorized", "rate_limited")


def _bucket_seconds(span: float) -> float:
    days = max(1, int(-(-span // (DAY * MAX_BUCKETS))))
    return days * DAY


def timeline(ctx: ReportContext) -> dict[str, Any]:
    period = ctx.probe.period
    width = _bucket_seconds(period.end - period.start)
    start = period.start - (period.start % DAY)  # buckets start at midnight UTC
    count = max(1, int(-(-(period.end - start) // width)))
    traffic = [Counter[str]() for _ in range(count)]
    findings = [Counter[str]() for _ in range(count)]
    query = select(_t.created_at, _t.outcome, _t.guardrails).where(
        period.within(), _t.kind == "interaction"
    )
    with ctx.store.engine.connect() as conn:
        for row in conn.execute(query):
            index = min(count - 1, int((row.created_at - start) // width))
            outcome = row.outcome
            kind = "error" if outcome in ERRORS else "refused" if outcome in REFUSED else "ok"
            traffic[index][kind] += 1
            if row.guardrails:
                for e in orjson.loads(row.guardrails):
                    if e.get("outcome") not in ("pass", None) and e.get("detector") in DETECTORS:
                        findings[index][e["detector"]] += 1
    labels = [iso(start + i * width) for i in range(count)]
    return {
        "bucket_seconds": width,
        "traffic": [
            {"start": label, **{k: c.get(k, 0) for k in ("ok", "refused", "error")}}
            for label, c in zip(labels, traffic, strict=True)
        ],
        "findings": [
            {"start": label, **{d: c.get(d, 0) for d in DETECTORS}}
            for label, c in zip(labels, findings, strict=True)
        ],
    }


def data_flow(ctx: ReportContext) -> dict[str, Any]:
    """Applications (projects of active keys) -> gateway -> providers, with calls per provider."""
    period = ctx.probe.period
    apps = Counter(k.project or "(no project)" for k in ctx.keys if k.revoked_at is None)
    with ctx.store.engine.connect() as conn:
        calls = {
            str(r[0]): int(r[1])
            for r in conn.execute(
                select(_t.provider, func.count())
                .where(period.within(), _t.kind == "interaction", _t.provider.is_not(None))
                .group_by(_t.provider)
            )
        }
    return {
        "applications": [{"name": n, "keys": c} for n, c in sorted(apps.items())],
        "gateway": {"name": "SignalVault gateway", "guardrails": "screening, redaction, audit"},
        "providers": [
            {
                "name": e.name,
                "processor": e.processor,
                "region": e.region or "region not stated",
                "dpa": e.dpa,
                "dpa_reference": e.dpa_reference or None,
                "allowed_classes": list(e.allowed_classes),
                "zero_data_retention": e.zero_data_retention is not None,
                "calls": calls.get(e.name, 0),
            }
            for e in ctx.register.entries.values()
        ],
    }
