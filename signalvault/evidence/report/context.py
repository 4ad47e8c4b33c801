"""What every criterion reads besides its own queries: the settings, the provider register, the
keys, accounts and incidents, the retention policy, and one verification of the whole trail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select

from signalvault.config import Settings
from signalvault.crypto.gateway_keys import GatewayKey
from signalvault.evidence.classes import Classifier
from signalvault.evidence.incidents import Incident, IncidentBook
from signalvault.evidence.register import ProviderRegister
from signalvault.evidence.report.probe import Probe
from signalvault.store import Store
from signalvault.store.schema import accounts
from signalvault.trail.audit import AuditTrail
from signalvault.trail.integrity.verify import VerifyReport, verify_trail
from signalvault.trail.retention import RetentionPolicy, load_policy


@dataclass(frozen=True, slots=True)
class AccountRow:
    email: str
    roles: dict[str, str]
    is_disabled: bool
    has_chosen_password: bool


@dataclass(slots=True)
class ReportContext:
    settings: Settings
    store: Store
    probe: Probe
    register: ProviderRegister
    classifier: Classifier
    keys: list[GatewayKey]
    accounts: list[AccountRow]
    incidents: list[Incident]
    retention: RetentionPolicy
    verification: VerifyReport


def open_context(
    store: Store, trail: AuditTrail, settings: Settings, probe: Probe, book: IncidentBook
) -> ReportContext:
    with store.engine.connect() as conn:
        rows = list(conn.execute(select(accounts)))
    found = [
        AccountRow(
            email=row.email,
            roles=dict(orjson.loads(row.roles)),
            is_disabled=row.disabled_at is not None,
            has_chosen_password=row.password_changed_at is not None,
        )
        for row in rows
    ]
    period = probe.period
    return ReportContext(
        settings=settings,
        store=store,
        probe=probe,
        register=ProviderRegister(settings.providers),
        classifier=Classifier(settings.classification),
        keys=store.list_keys(),
        accounts=found,
        incidents=book.list(since=period.start, until=period.end, limit=10_000),
        retention=load_policy(store, settings.retention),
        verification=verify_trail(store, trail.master_keys, settings.audit),
    )


def event_details(rows: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(row.details) if row.details else {} for row in rows]
