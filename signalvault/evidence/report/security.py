"""Security criteria (CC6 logical access and encryption, CC7 monitoring and incidents, CC8
change management), each from the trail of the period and the deployment's configuration."""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlparse

import orjson
from sqlalchemy import func, select

from signalvault.console import iso
from signalvault.evidence.classes import CONFIDENTIAL, DEFAULT_CONTENT_ROLES, RESTRICTED
from signalvault.evidence.incidents import OPEN, RESOLVED, response_times
from signalvault.evidence.register import CLASSIFICATION_NOT_ALLOWED
from signalvault.evidence.report.context import ReportContext, event_details
from signalvault.evidence.report.model import Criterion, Gap
from signalvault.evidence.report.probe import table
from signalvault.store.schema import audit_records

_t = audit_records.c
DAY = 86_400.0
KEY_ROTATION_DAYS = 90  # an active key older than this and never rotated is a gap
UNACKNOWLEDGED_HOURS = 24
UNRESOLVED_DAYS = 7
CONTENT_EVENTS = ("content_read", "content_export", "subject_export", "audit_sample")
CHANGE_EVENTS = ("policy_proposed", "policy_approved", "policy_rejected", "policy_activated")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
PERSONAL = (CONFIDENTIAL, RESTRICTED)


def cc6_1(ctx: ReportContext) -> Criterion:
    probe, period = ctx.probe, ctx.probe.period
    rows, stored = probe.rows(
        "Interaction content encrypted at rest (AES-256-GCM under per-subject data keys)",
        select(func.count(), func.count(_t.prompt_ct), func.count(_t.data_key_id)).where(
            period.within(), _t.kind == "interaction"
        ),
    )
    total, with_content, with_key = rows[0]
    stored.figures = {
        "interactions": total,
        "with_content": with_content,
        "encrypted_under_a_data_key": with_key,
        "content_without_data_key": with_content - min(with_content, with_key),
    }
    active = [k for k in ctx.keys if k.revoked_at is None]
    keys = probe.configuration(
        "Gateway keys (stored as peppered hashes; the secret is shown once)",
        "store: gateway_keys (no secrets)",
        len(ctx.keys),
        table=table(
            ["name", "project", "environment", "created", "last rotated", "expires", "revoked"],
            [
                [
                    k.name,
                    k.project,
                    k.environment,
                    iso(k.created_at),
                    iso(k.rotated_at),
                    iso(k.expires_at),
                    iso(k.revoked_at),
                ]
                for k in ctx.keys
            ],
        ),
        figures={"active": len(active), "revoked": len(ctx.keys) - len(active)},
    )
    gaps = []
    if stored.figures["content_without_data_key"]:
        gaps.append(Gap("content stored without a data key", "run `signalvault audit verify`"))
    stale = [
        k.name
        for k in active
        if k.rotated_at is None and k.created_at < probe.now - KEY_ROTATION_DAYS * DAY
    ]
    if stale:
        gaps.append(
            Gap(
                f"{len(stale)} active key(s) never rotated in {KEY_ROTATION_DAYS} days: "
                + ", ".join(sorted(stale)[:10]),
                "rotate them: `signalvault keys rotate ID --grace 24h`",
            )
        )
    return Criterion(
        "CC6.1", "Logical access and encryption at rest", "security", [stored, keys], gaps
    )


def cc6_2(ctx: ReportContext) -> Criterion:
    probe = ctx.probe
    roles = Counter(role for a in ctx.accounts if not a.is_disabled for role in a.roles.values())
    accounts = probe.configuration(
        "Accounts of the dashboard and admin API by role",
        "store: accounts (email, roles, disabled; never password hashes)",
        len(ctx.accounts),
        table=table(["role", "enabled accounts"], sorted(roles.items())),
        figures={"disabled": sum(1 for a in ctx.accounts if a.is_disabled)},
    )
    rows, changes = probe.rows(
        "Account and key changes in the period (actor, action)",
        select(_t.id, _t.kind, _t.actor, _t.created_at)
        .where(probe.period.within(), _t.kind.in_(("admin", "gateway_key")))
        .order_by(_t.created_at),
    )
    changes.figures = dict(Counter(r.kind for r in rows))
    changes.record_ids = [r.id for r in rows[:50]]
    gaps = []
    if not ctx.accounts:
        gaps.append(
            Gap(
                "no dashboard or admin-API account exists: changes are not tied to people",
                "create named accounts: `signalvault users create --email E --role R`",
            )
        )
    pending = [a.email for a in ctx.accounts if not a.is_disabled and not a.has_chosen_password]
    if pending:
        gaps.append(
            Gap(
                f"{len(pending)} account(s) still on a one-time password",
                "have them sign in and choose a password, or disable them",
            )
        )
    return Criterion(
        "CC6.2", "Registration and authorisation of users", "security", [accounts, changes], gaps
    )


def cc6_3(ctx: ReportContext) -> Criterion:
    probe = ctx.probe
    rows, reads = probe.rows(
        "Reads of decrypted content in the period (each one audited)",
        select(_t.id, _t.kind, _t.actor).where(probe.period.within(), _t.kind.in_(CONTENT_EVENTS)),
    )
    by_actor = Counter((r.actor, r.kind) for r in rows)
    reads.table = table(["actor", "kind", "count"], [[a, k, n] for (a, k), n in by_actor.items()])
    reads.record_ids = [r.id for r in rows[:50]]
    classes = ("public", "internal", CONFIDENTIAL, RESTRICTED)
    roles = probe.configuration(
        "Roles that may read content, per data class",
        "configuration: [classification] content_roles",
        len(classes),
        table=table(
            ["class", "roles"], [[c, ", ".join(ctx.classifier.content_roles(c))] for c in classes]
        ),
    )
    wide = sorted(
        {
            f"{c}: {role}"
            for c in classes
            for role in ctx.classifier.content_roles(c)
            if role not in DEFAULT_CONTENT_ROLES
        }
    )
    gaps = []
    if wide:
        gaps.append(
            Gap(
                "roles beyond owner and auditor may read content: " + "; ".join(wide),
                "narrow `[classification] content_roles` to the roles that need it",
            )
        )
    return Criterion("CC6.3", "Role-based access to content", "security", [reads, roles], gaps)


def cc6_6(ctx: ReportContext) -> Criterion:
    entries = ctx.register.entries.values()
    rows = []
    plain = []
    for entry in entries:
        url = urlparse(entry.base_url)
        is_tls = url.scheme == "https"
        rows.append([entry.name, url.scheme, url.hostname, "yes" if is_tls else "no"])
        if not is_tls and url.hostname not in LOOPBACK:
            plain.append(entry.name)
    transit = ctx.probe.configuration(
        "Provider connections (TLS) and gateway authentication",
        "configuration: [[providers]] base_url",
        len(rows),
        table=table(["provider", "scheme", "host", "TLS"], rows),
        figures={"gateway_keys_required": True, "provider_keys_held_by_gateway_only": True},
    )
    gaps = [
        Gap(
            f"provider {name} is reached over plain HTTP",
            f"use an https:// base_url for provider {name}",
        )
        for name in plain
    ]
    return Criterion(
        "CC6.6", "Boundary protection and encryption in transit", "security", [transit], gaps
    )


def cc6_7(ctx: ReportContext) -> Criterion:
    probe = ctx.probe
    rows, refused = probe.rows(
        "Requests refused because no provider may receive their data class",
        select(_t.id, _t.classification).where(
            probe.period.within(), _t.error_code == CLASSIFICATION_NOT_ALLOWED
        ),
    )
    refused.figures = {"refused": len(rows), **Counter(r.classification for r in rows)}
    refused.record_ids = [r.id for r in rows[:50]]
    skipped_rows, skipped = probe.rows(
        "Fallback targets skipped for the data class (never called)",
        select(_t.id, _t.attempts).where(
            probe.period.within(), _t.attempts.like(f"%{CLASSIFICATION_NOT_ALLOWED}%")
        ),
    )
    skipped.figures = {"requests_with_skipped_targets": len(skipped_rows)}
    allowed = probe.configuration(
        "Classes each provider may receive",
        "configuration: [[providers]] allowed_classes, dpa",
        len(ctx.register.entries),
        table=table(
            ["provider", "allowed classes", "DPA"],
            [
                [e.name, ", ".join(e.allowed_classes), "yes" if e.dpa else "no"]
                for e in ctx.register.entries.values()
            ],
        ),
    )
    gaps = [
        Gap(
            f"provider {e.name} may receive "
            f"{', '.join(c for c in e.allowed_classes if c in PERSONAL)} data "
            "without a DPA on file",
            f"sign a DPA with {e.processor} (dpa = true, dpa_reference) or remove confidential "
            f"and restricted from its allowed_classes",
        )
        for e in ctx.register.entries.values()
        if not e.dpa and set(PERSONAL) & set(e.allowed_classes)
    ]
    return Criterion(
        "CC6.7",
        "Transmission restricted by data class",
        "security",
        [refused, skipped, allowed],
        gaps,
    )


def cc7_2(ctx: ReportContext) -> Criterion:
    probe = ctx.probe
    rows, found = probe.rows(
        "Guardrail findings in the period by detector and outcome",
        select(_t.guardrails).where(probe.period.within(), _t.guardrails.is_not(None)),
    )
    tally: Counter[tuple[str, str, str]] = Counter()
    for row in rows:
        for e in orjson.loads(row.guardrails):
            if e.get("outcome") != "pass":
                tally[(e.get("detector"), e.get("direction"), e.get("outcome"))] += 1
    found.table = table(
        ["detector", "direction", "outcome", "count"], [[*k, n] for k, n in sorted(tally.items())]
    )
    settings = ctx.settings
    alerts = settings.alerts
    monitoring = probe.configuration(
        "Monitoring configuration",
        "configuration: [guardrails] failure_mode, [limits] failure_mode, [alerts]",
        1,
        figures={
            "guardrail_failure_mode": settings.guardrails.failure_mode,
            "limits_failure_mode": settings.limits.failure_mode,
            "alert_webhook": alerts.webhook_url is not None,
            "alert_kinds": list(alerts.events),
            "alerts_signed": alerts.signing_secret is not None,
        },
    )
    gaps = []
    if settings.guardrails.failure_mode == "open":
        gaps.append(
            Gap(
                "guardrails fail open: if the engine fails, requests pass unscreened",
                'set `[guardrails] failure_mode = "closed"`',
            )
        )
    if settings.limits.failure_mode == "open":
        gaps.append(
            Gap(
                "rate limits fail open when Redis is unreachable",
                'set `[limits] failure_mode = "closed"`',
            )
        )
    if alerts.webhook_url is None:
        gaps.append(
            Gap(
                "no alert webhook: findings and bypasses reach nobody",
                "set `[alerts] webhook_url` (and `signing_secret`)",
            )
        )
    return Criterion("CC7.2", "Monitoring of the system", "security", [found, monitoring], gaps)


def cc7_3(ctx: ReportContext) -> Criterion:
    probe = ctx.probe
    found = probe.configuration(
        "Incidents opened in the period (from alerts, by kind and scope)",
        "store: incidents where first_seen in the period",
        len(ctx.incidents),
        table=table(
            ["id", "kind", "scope", "severity", "status", "alerts", "first seen"],
            [
                [i.id, i.kind, i.scope, i.severity, i.status, i.count, iso(i.first_seen)]
                for i in ctx.incidents
            ],
        ),
        figures=dict(Counter(i.kind for i in ctx.incidents)),
    )
    late = [
        i
        for i in ctx.incidents
        if i.status == OPEN and i.first_seen < probe.now - UNACKNOWLEDGED_HOURS * 3600
    ]
    gaps = []
    if late:
        gaps.append(
            Gap(
                f"{len(late)} incident(s) unacknowledged for over {UNACKNOWLEDGED_HOURS} hours",
                "acknowledge them: `signalvault incidents ack ID`",
            )
        )
    return Criterion("CC7.3", "Security events evaluated as incidents", "security", [found], gaps)


def cc7_4(ctx: ReportContext) -> Criterion:
    probe = ctx.probe
    times = response_times(ctx.incidents)
    resolved = [i for i in ctx.incidents if i.status == RESOLVED]
    handled = probe.configuration(
        "Incident response: times to acknowledge and resolve, with the resolution notes",
        "store: incidents where first_seen in the period",
        len(ctx.incidents),
        figures=times,
        table=table(
            ["id", "kind", "resolved by", "seconds to resolve", "note"],
            [
                [i.id, i.kind, i.resolved_by, i.seconds_to_resolve, i.resolution_note]
                for i in resolved
            ],
        ),
    )
    stale = [
        i
        for i in ctx.incidents
        if i.status != RESOLVED and i.first_seen < probe.now - UNRESOLVED_DAYS * DAY
    ]
    gaps = []
    if stale:
        gaps.append(
            Gap(
                f"{len(stale)} incident(s) unresolved after {UNRESOLVED_DAYS} days",
                "resolve them with a note: `signalvault incidents resolve ID --note TEXT`",
            )
        )
    return Criterion("CC7.4", "Incident response", "security", [handled], gaps)


def cc8_1(ctx: ReportContext) -> Criterion:
    probe = ctx.probe
    rows, changes = probe.rows(
        "Guardrail policy changes with proposer and approver",
        select(_t.id, _t.kind, _t.actor, _t.created_at, _t.details)
        .where(probe.period.within(), _t.kind.in_(CHANGE_EVENTS))
        .order_by(_t.created_at),
    )
    details = event_details(rows)
    changes.table = table(
        ["record", "event", "actor", "time", "version", "proposed by", "approved by", "how"],
        [
            [
                r.id,
                r.kind,
                r.actor,
                iso(r.created_at),
                d.get("version"),
                d.get("proposed_by"),
                d.get("approved_by"),
                d.get("how"),
            ]
            for r, d in zip(rows, details, strict=True)
        ],
    )
    changes.record_ids = [r.id for r in rows[:50]]
    other_rows, other = probe.rows(
        "Settings and provider register changes",
        select(_t.id, _t.kind, _t.actor).where(
            probe.period.within(), _t.kind.in_(("settings", "provider_register"))
        ),
    )
    other.figures = dict(Counter(r.kind for r in other_rows))
    other.record_ids = [r.id for r in other_rows[:50]]
    unreviewed = [
        r.id
        for r, d in zip(rows, details, strict=True)
        if r.kind == "policy_activated" and d.get("how") == "review off"
    ]
    gaps = []
    if not ctx.settings.guardrails.two_person_review:
        gaps.append(
            Gap(
                "two-person review of policy changes is off",
                "set `[guardrails] two_person_review = true`",
            )
        )
    if unreviewed:
        gaps.append(
            Gap(
                f"{len(unreviewed)} policy change(s) took effect without a second approver",
                "turn review on and re-approve the active policy through a second account",
            )
        )
    return Criterion("CC8.1", "Change management", "security", [changes, other], gaps)


CRITERIA: tuple[Any, ...] = (cc6_1, cc6_2, cc6_3, cc6_6, cc6_7, cc7_2, cc7_3, cc7_4, cc8_1)
