"""Confidentiality (C1.1-C1.2) and privacy (P-series): classification, disposal, lawful basis,
data minimisation by redaction, retention, erasure, access, the record of disclosures to
providers (P6.2) and the provider register (P6.4-P6.5)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import orjson
from sqlalchemy import func, select

from signalvault.console import iso
from signalvault.evidence.classes import CONFIDENTIAL, RESTRICTED
from signalvault.evidence.report.context import ReportContext, event_details
from signalvault.evidence.report.model import Criterion, Gap
from signalvault.evidence.report.probe import table
from signalvault.store.schema import audit_records

_t = audit_records.c
PERSONAL = (CONFIDENTIAL, RESTRICTED)
FORWARDED = ("ok", "provider_error", "stream_cut", "cancelled", "gateway_error")


def c1_1(ctx: ReportContext) -> Criterion:
    probe = ctx.probe
    rows, classes = probe.rows(
        "Records by data class",
        select(_t.classification, func.count())
        .where(probe.period.within())
        .group_by(_t.classification),
    )
    counts = {str(r[0]): int(r[1]) for r in rows}
    classes.table = table(["class", "records"], sorted(counts.items()))
    settings = ctx.settings.classification
    config = probe.configuration(
        "How records are classified",
        "configuration: [classification]",
        1,
        figures={
            "default": settings.default,
            "projects": dict(settings.projects),
            "keys_declared": len(settings.keys),
            "rules": "secret found -> restricted; personal data found -> confidential",
        },
    )
    gaps = []
    if counts.get("None"):
        gaps.append(
            Gap(
                f"{counts['None']} record(s) of the period carry no class (written before "
                "classification was enabled)",
                "none for new records; report those records as unclassified",
            )
        )
    return Criterion(
        "C1.1", "Confidential information identified", "confidentiality", [classes, config], gaps
    )


def _retention_runs(ctx: ReportContext) -> tuple[list[Any], Any]:
    probe = ctx.probe
    return probe.rows(
        "Retention runs in the period",
        select(_t.id, _t.created_at, _t.actor, _t.details)
        .where(probe.period.within(), _t.kind == "retention_run")
        .order_by(_t.created_at),
    )


def c1_2(ctx: ReportContext) -> Criterion:
    rows, runs = _retention_runs(ctx)
    details = event_details(rows)
    runs.table = table(
        ["record", "time", "actor", "dry run", "tombstoned"],
        [
            [r.id, iso(r.created_at), r.actor, d.get("dry_run"), d.get("tombstoned")]
            for r, d in zip(rows, details, strict=True)
        ],
    )
    runs.record_ids = [r.id for r in rows[:50]]
    policy = ctx.retention
    config = ctx.probe.configuration(
        "Retention in force (days; 0 keeps)",
        "configuration: [retention] days, projects, classes (with run-time overrides)",
        1,
        figures={
            "default_days": policy.default_days,
            "projects": dict(policy.projects),
            "classes": dict(policy.classes),
        },
    )
    gaps = []
    if not policy.is_active:
        gaps.append(
            Gap(
                "no retention is set: records are kept forever",
                "set `[retention] days` (and `classes` for confidential and restricted data)",
            )
        )
    return Criterion(
        "C1.2", "Disposal of confidential information", "confidentiality", [runs, config], gaps
    )


def _personal_by_project(ctx: ReportContext) -> tuple[dict[str, int], Any]:
    probe = ctx.probe
    rows, evidence = probe.rows(
        "Interactions carrying personal data (confidential or restricted) by project",
        select(_t.project, func.count())
        .where(probe.period.within(), _t.kind == "interaction", _t.classification.in_(PERSONAL))
        .group_by(_t.project),
    )
    return {str(r[0]): int(r[1]) for r in rows}, evidence


def p3_1(ctx: ReportContext) -> Criterion:
    counts, evidence = _personal_by_project(ctx)
    privacy = ctx.settings.privacy
    rows = []
    undeclared = []
    for project, count in sorted(counts.items()):
        basis = privacy.lawful_basis.get(project) or privacy.default_lawful_basis
        purpose = privacy.purposes.get(project) or privacy.default_purpose
        rows.append([project, count, basis or "undeclared", purpose or "undeclared"])
        if not basis or not purpose:
            undeclared.append(project)
    evidence.table = table(["project", "requests", "lawful basis", "purpose"], rows)
    gaps = [
        Gap(
            f"project {p} sent personal data with no declared lawful basis or purpose",
            f'declare it: `[privacy] lawful_basis = {{"{p}" = "contract"}}` and `purposes`',
        )
        for p in undeclared
    ]
    return Criterion(
        "P3.1",
        "Lawful basis and purpose for personal data",
        "privacy",
        [evidence],
        gaps,
        is_applicable=bool(counts),
        note="" if counts else "no personal data was sent to providers in the period",
    )


def p4_1(ctx: ReportContext) -> Criterion:
    probe = ctx.probe
    rows, found = probe.rows(
        "Personal data in requests: redacted before forwarding, or forwarded as found",
        select(_t.guardrails, _t.outcome).where(
            probe.period.within(), _t.guardrails.like('%"detector":"pii"%')
        ),
    )
    tally: Counter[str] = Counter()
    for row in rows:
        for e in orjson.loads(row.guardrails):
            if e.get("detector") == "pii" and e.get("direction") == "input":
                tally[e.get("outcome", "?")] += 1
    found.figures = dict(tally)
    gaps = []
    if tally.get("logged"):
        gaps.append(
            Gap(
                f"personal data was forwarded unredacted {tally['logged']} time(s) (action `log`)",
                "set the pii input rule's action to `redact`",
            )
        )
    return Criterion("P4.1", "Data minimisation by redaction", "privacy", [found], gaps)


def p4_2(ctx: ReportContext) -> Criterion:
    policy = ctx.retention
    rows, runs = _retention_runs(ctx)
    runs.record_ids = [r.id for r in rows[:50]]
    limited = policy.default_days > 0 or all(policy.classes.get(c, 0) > 0 for c in PERSONAL)
    gaps = []
    if not limited:
        gaps.append(
            Gap(
                "personal data is kept without a time limit",
                "set `[retention] classes = {confidential = 90, restricted = 30}` or `days`",
            )
        )
    return Criterion("P4.2", "Retention of personal information", "privacy", [runs], gaps)


def _events(ctx: ReportContext, kind: str, title: str) -> tuple[list[Any], Any]:
    probe = ctx.probe
    rows, evidence = probe.rows(
        title,
        select(_t.id, _t.created_at, _t.actor).where(probe.period.within(), _t.kind == kind),
    )
    evidence.record_ids = [r.id for r in rows[:50]]
    evidence.figures = {"count": len(rows)}
    return rows, evidence


def p4_3(ctx: ReportContext) -> Criterion:
    _, receipts = _events(ctx, "erasure", "Erasure receipts (data subjects erased) in the period")
    return Criterion("P4.3", "Disposal: erasure on request", "privacy", [receipts])


def p5_1(ctx: ReportContext) -> Criterion:
    _, exports = _events(ctx, "subject_export", "Data-subject access exports in the period")
    return Criterion("P5.1", "Access by data subjects", "privacy", [exports])


def p6_2(ctx: ReportContext) -> Criterion:
    probe = ctx.probe
    rows, disclosed = probe.rows(
        "Record of disclosures: provider calls that carried personal data",
        select(_t.id, _t.provider, _t.classification).where(
            probe.period.within(),
            _t.kind == "interaction",
            _t.classification.in_(PERSONAL),
            _t.outcome.in_(FORWARDED),
        ),
    )
    by = Counter((r.provider, r.classification) for r in rows)
    disclosed.table = table(
        ["provider", "class", "calls"], [[p, c, n] for (p, c), n in sorted(by.items(), key=str)]
    )
    disclosed.record_ids = [r.id for r in rows[:50]]
    return Criterion(
        "P6.2",
        "Record of disclosures to third parties",
        "privacy",
        [disclosed],
        is_applicable=bool(rows),
        note="" if rows else "no personal data was disclosed to providers in the period",
    )


def _received_personal(ctx: ReportContext) -> set[str]:
    probe = ctx.probe
    with probe.store.engine.connect() as conn:
        found = conn.execute(
            select(_t.provider)
            .distinct()
            .where(
                probe.period.within(),
                _t.classification.in_(PERSONAL),
                _t.outcome.in_(FORWARDED),
            )
        )
        return {str(r[0]) for r in found if r[0] is not None}


def p6_4(ctx: ReportContext) -> Criterion:
    entries = list(ctx.register.entries.values())
    today = dt.datetime.fromtimestamp(ctx.probe.now, dt.UTC).date()
    reviews = [dt.date.fromisoformat(e.dpa_review) for e in entries if e.dpa_review]
    valid = min(reviews).isoformat() if reviews else None
    register = ctx.probe.configuration(
        "Provider register: DPAs (valid until the next review date)",
        "configuration: [[providers]] dpa, dpa_reference, dpa_signed, dpa_review, processor",
        len(entries),
        table=table(
            ["provider", "processor", "DPA", "reference", "signed", "review", "region"],
            [
                [
                    e.name,
                    e.processor,
                    "yes" if e.dpa else "no",
                    e.dpa_reference,
                    e.dpa_signed,
                    e.dpa_review,
                    e.region,
                ]
                for e in entries
            ],
        ),
        figures={"next_review": valid},
    )
    received = _received_personal(ctx)
    gaps = [
        Gap(
            f"provider {e.name} received personal data in the period without a DPA on file",
            f"sign a DPA with {e.processor} and record it (dpa, dpa_reference, dpa_signed), or "
            f"stop sending it personal data (allowed_classes)",
        )
        for e in entries
        if e.name in received and not e.dpa
    ]
    gaps += [
        Gap(
            f"the DPA with {e.processor} ({e.name}) was due for review on {e.dpa_review}",
            "review it and set the next `dpa_review` date",
        )
        for e in entries
        if e.dpa and e.is_review_overdue(today)
    ]
    return Criterion("P6.4", "Processors' commitments (DPAs)", "privacy", [register], gaps)


def p6_5(ctx: ReportContext) -> Criterion:
    entries = list(ctx.register.entries.values())
    rows = []
    for e in entries:
        zdr = e.zero_data_retention
        rows.append(
            [
                e.name,
                ", ".join(e.sub_processors) or "none listed",
                e.retention_terms or "not stated",
                "none"
                if zdr is None
                else f"{zdr.scope} {zdr.granted_to} ({zdr.evidence}); excludes "
                + (", ".join(zdr.excluded_endpoints) or "nothing"),
            ]
        )
    register = ctx.probe.configuration(
        "Sub-processors, retention terms and zero data retention as granted",
        "configuration: [[providers]] sub_processors, retention_terms, zero_data_retention",
        len(entries),
        table=table(["provider", "sub-processors", "retention terms", "zero data retention"], rows),
    )
    received = _received_personal(ctx)
    gaps = [
        Gap(
            f"provider {e.name} received personal data but its retention terms are not stated",
            f"record what {e.processor} keeps and for how long (retention_terms)",
        )
        for e in entries
        if e.name in received and not e.retention_terms and e.zero_data_retention is None
    ]
    return Criterion("P6.5", "Sub-processors and their retention", "privacy", [register], gaps)


CRITERIA: tuple[Any, ...] = (c1_1, c1_2, p3_1, p4_1, p4_2, p4_3, p5_1, p6_2, p6_4, p6_5)
