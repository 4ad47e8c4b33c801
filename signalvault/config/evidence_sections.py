"""Settings of the evidence features (SPEC §7c): data classification and its controls, the
lawful basis of sending personal data per project, and incidents raised from alerts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from signalvault.config.secret import Secret

# Lowest to highest: a record's class is the highest any source gives it.
CLASSES = ("public", "internal", "confidential", "restricted")
LAWFUL_BASES = (
    "consent",
    "contract",
    "legal_obligation",
    "vital_interests",
    "public_task",
    "legitimate_interests",
)
INCIDENT_SEVERITIES = ("low", "medium", "high", "critical")
WEBHOOK_FORMATS = ("generic", "slack")


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


def _mapping(help: str, default: dict[str, Any] | None = None) -> Any:
    return field(
        default_factory=lambda: MappingProxyType(dict(default or {})), metadata={"help": help}
    )


@dataclass(frozen=True, slots=True)
class ClassificationSettings:
    default: str = _setting(
        "internal",
        "Class of a record nothing else raises: public, internal, confidential or restricted.",
    )
    projects: Mapping[str, str] = _mapping(
        "Default class per project (`{name = class}`), raising `default` for that project."
    )
    keys: Mapping[str, str] = _mapping(
        "Declared class per gateway key (`{key_id = class}`): every request of the key is at "
        "least that class."
    )
    content_roles: Mapping[str, tuple[str, ...]] = _mapping(
        'Roles that may read decrypted content per class (`{restricted = ["auditor"]}`); a '
        "class not named keeps the roles of SPEC §5 (owner, auditor). The CLI reads as owner.",
    )
    alert_classes: tuple[str, ...] = _setting(
        (), "Classes whose every interaction raises a `classified_data` alert (and incident)."
    )


@dataclass(frozen=True, slots=True)
class PrivacySettings:
    lawful_basis: Mapping[str, str] = _mapping(
        "GDPR Art. 6 basis for sending personal data to providers, per project (`{name = "
        '"contract"}`): consent, contract, legal_obligation, vital_interests, public_task, '
        "legitimate_interests. A project's registry entry can declare it too."
    )
    purposes: Mapping[str, str] = _mapping(
        'Why each project sends personal data (`{name = "support replies"}`), shown in the report.'
    )
    default_lawful_basis: str = _setting(
        "", "Basis for projects that declare none; empty: undeclared (a gap in the report)."
    )
    default_purpose: str = _setting("", "Purpose for projects that declare none.")


@dataclass(frozen=True, slots=True)
class IncidentSettings:
    severities: Mapping[str, str] = _mapping(
        'Severity per alert kind (`{prompt_injection = "high"}`): low, medium, high, critical; '
        "kinds not named use the built-in table (docs/evidence.md)."
    )
    webhook_url: Secret | None = _setting(
        None,
        "URL that receives incident events (opened, acknowledged, resolved), signed with "
        "`[alerts] signing_secret`; unset: none are sent.",
    )
    webhook_format: str = _setting(
        "generic", "Shape of incident webhooks: `generic` JSON or `slack` (Block Kit blocks)."
    )
    storm_threshold: int = _setting(
        3,
        "Circuit breakers opening within `storm_window_seconds` that make a `breaker_storm` "
        "alert (and incident).",
    )
    storm_window_seconds: float = _setting(300.0, "Window in which breaker openings are counted.")
