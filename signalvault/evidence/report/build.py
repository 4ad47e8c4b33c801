"""`build_report`: the SOC 2 report of a period as one JSON-ready dict, signed like an export
manifest (`manifest.check_signature` verifies it). The HTML and the dashboard render this."""

from __future__ import annotations

import time
from typing import Any

from signalvault import __version__
from signalvault.config import Settings
from signalvault.console import iso
from signalvault.evidence.incidents import IncidentBook
from signalvault.evidence.report import operations, privacy, security
from signalvault.evidence.report.context import open_context
from signalvault.evidence.report.model import GAP, MET, NOT_APPLICABLE, Criterion
from signalvault.evidence.report.probe import Period, Probe
from signalvault.evidence.report.series import data_flow, timeline
from signalvault.store import Store
from signalvault.trail.audit import AuditTrail
from signalvault.trail.export import manifest as manifests
from signalvault.trail.retention import DAY, load_policy
from signalvault.trail.signing import Signer

REPORT_TYPE = "signalvault.report.soc2"
REPORT_EVENT = "report_generated"
DEFAULT_DAYS = 30
CRITERIA = (*security.CRITERIA, *operations.CRITERIA, *privacy.CRITERIA)


def default_period(now: float | None = None) -> Period:
    end = time.time() if now is None else now
    return Period(end - DEFAULT_DAYS * DAY, end)


def _valid_until(store: Store, settings: Settings, period: Period) -> float | None:
    """Trail figures of the period hold until retention starts removing its records."""
    policy = load_policy(store, settings.retention)
    days = [
        d
        for d in (policy.default_days, *policy.projects.values(), *policy.classes.values())
        if d > 0
    ]
    return period.start + min(days) * DAY if days else None


def build_report(
    store: Store,
    trail: AuditTrail,
    settings: Settings,
    book: IncidentBook,
    signer: Signer,
    period: Period,
    actor: str,
) -> dict[str, Any]:
    """The signed report. Its generation is recorded in the trail (who, which period)."""
    probe = Probe(store, period, _valid_until(store, settings, period))
    ctx = open_context(store, trail, settings, probe, book)
    criteria: list[Criterion] = [build(ctx) for build in CRITERIA]
    statuses = [c.status for c in criteria]
    report = {
        "type": REPORT_TYPE,
        "period": period.as_json(),
        "generated_at": iso(probe.now),
        "generator": f"signalvault {__version__}",
        "trail": {
            "range": probe.trail_range,
            "verification": {
                "status": ctx.verification.status,
                "tree_size": ctx.verification.tree_size,
                "root": ctx.verification.root,
            },
        },
        "summary": {s: statuses.count(s) for s in (MET, GAP, NOT_APPLICABLE)},
        "criteria": [c.as_json() for c in criteria],
        "charts": timeline(ctx),
        "data_flow": data_flow(ctx),
        "provider_register": ctx.register.as_json(),
    }
    report["audit_record_id"] = trail.record_event(
        REPORT_EVENT, actor, {"period": period.as_json(), "summary": report["summary"]}
    )
    return manifests.sign(report, signer)
