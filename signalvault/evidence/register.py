"""The provider register (SPEC §7c): what an auditor asks about each processor (DPA, region,
sub-processors, retention terms, zero data retention as granted), which data classes each may
receive, and the routing control that keeps a class away from providers that may not have it.

Built from `[[providers]]`; changes between starts are recorded in the trail (`record_changes`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import orjson

from signalvault.config import CLASSES, ProviderSettings, Settings
from signalvault.store import RecordFilter, Store
from signalvault.trail.audit import AuditTrail

CLASSIFICATION_NOT_ALLOWED = "classification_not_allowed"
REGISTER_EVENT = "provider_register"


@dataclass(frozen=True, slots=True)
class ZeroDataRetention:
    """Zero data retention as the provider granted it: to whom, on what evidence, and which
    endpoints it does not cover (files, batches and the like usually keep data)."""

    scope: str  # organisation | project
    granted_to: str
    evidence: str
    granted_on: str
    excluded_endpoints: tuple[str, ...]

    def covers(self, endpoint: str) -> bool:
        return not any(endpoint.startswith(prefix) for prefix in self.excluded_endpoints)


@dataclass(frozen=True, slots=True)
class RegisterEntry:
    name: str
    kind: str
    base_url: str
    dpa: bool
    dpa_reference: str
    dpa_signed: str
    dpa_review: str
    region: str
    processor: str  # the legal processor: the provider, or the cloud that hosts the model
    sub_processors: tuple[str, ...]
    retention_terms: str
    zero_data_retention: ZeroDataRetention | None
    allowed_classes: tuple[str, ...]

    def allows(self, classification: str | None) -> bool:
        return classification is None or classification in self.allowed_classes

    def is_review_overdue(self, today: dt.date) -> bool:
        return bool(self.dpa_review) and dt.date.fromisoformat(self.dpa_review) < today

    def as_json(self) -> dict[str, Any]:
        zdr = self.zero_data_retention
        return {
            "name": self.name,
            "kind": self.kind,
            "processor": self.processor,
            "dpa": self.dpa,
            "dpa_reference": self.dpa_reference or None,
            "dpa_signed": self.dpa_signed or None,
            "dpa_review": self.dpa_review or None,
            "region": self.region or None,
            "sub_processors": list(self.sub_processors),
            "retention_terms": self.retention_terms or None,
            "zero_data_retention": None
            if zdr is None
            else {
                "scope": zdr.scope,
                "granted_to": zdr.granted_to or None,
                "evidence": zdr.evidence,
                "granted_on": zdr.granted_on or None,
                "excluded_endpoints": list(zdr.excluded_endpoints),
            },
            "allowed_classes": list(self.allowed_classes),
        }


def _entry(p: ProviderSettings) -> RegisterEntry:
    zdr = None
    if p.zero_data_retention:
        z = p.zero_data_retention
        zdr = ZeroDataRetention(
            scope=z["scope"],
            granted_to=z.get("granted_to", ""),
            evidence=z["evidence"],
            granted_on=z.get("granted_on", ""),
            excluded_endpoints=tuple(
                part.strip() for part in z.get("excluded_endpoints", "").split(",") if part.strip()
            ),
        )
    return RegisterEntry(
        name=p.name,
        kind=p.kind,
        base_url=p.base_url,
        dpa=p.dpa,
        dpa_reference=p.dpa_reference,
        dpa_signed=p.dpa_signed,
        dpa_review=p.dpa_review,
        region=p.region,
        processor=p.processor or p.name,
        sub_processors=p.sub_processors,
        retention_terms=p.retention_terms,
        zero_data_retention=zdr,
        allowed_classes=tuple(c for c in CLASSES if c in p.allowed_classes),
    )


class _Target(Protocol):
    @property
    def provider(self) -> Any: ...
    @property
    def model(self) -> str: ...


TargetT = TypeVar("TargetT", bound=_Target)


class ProviderRegister:
    """Every configured provider's register entry, by name."""

    def __init__(self, providers: Sequence[ProviderSettings]) -> None:
        self.entries = {p.name: _entry(p) for p in providers}

    def allows(self, provider: str, classification: str | None) -> bool:
        entry = self.entries.get(provider)
        return entry is None or entry.allows(classification)

    def split(
        self, targets: Sequence[TargetT], classification: str | None
    ) -> tuple[list[TargetT], list[TargetT]]:
        """(targets that may receive `classification`, those that may not), in route order."""
        allowed = [t for t in targets if self.allows(t.provider.name, classification)]
        refused = [t for t in targets if not self.allows(t.provider.name, classification)]
        return allowed, refused

    def as_json(self) -> list[dict[str, Any]]:
        return [entry.as_json() for entry in self.entries.values()]


def record_changes(store: Store, trail: AuditTrail, register: ProviderRegister, actor: str) -> bool:
    """Record the register in the trail when it differs from the last one recorded (before and
    after), so a change made in the config file is audited at the next start. True if recorded."""
    after = register.as_json()
    before: list[dict[str, Any]] | None = None
    for row in store.list_records(RecordFilter(kind=REGISTER_EVENT), limit=1):
        before = orjson.loads(row["details"]).get("after")
    if before == after:
        return False
    names_before = {p["name"] for p in before or []}
    names_after = {p["name"] for p in after}
    changed = sorted(
        p["name"] for p in after if p["name"] in names_before and p not in (before or [])
    )
    trail.record_event(
        REGISTER_EVENT,
        actor,
        {
            "before": before,
            "after": after,
            "added": sorted(names_after - names_before),
            "removed": sorted(names_before - names_after),
            "changed": changed,
        },
    )
    return True


def settings_register(settings: Settings) -> ProviderRegister:
    return ProviderRegister(settings.providers)
