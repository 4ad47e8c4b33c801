"""Legal holds: placing, listing and releasing them. A hold on a project, gateway key, end user
or single record suspends retention and erasure of what it covers; every change is audited."""

from __future__ import annotations

import time
import uuid
from typing import Any

from signalvault.console import iso
from signalvault.errors import ConfigError
from signalvault.store import Store
from signalvault.store.lifecycle import HOLD_SCOPES, LegalHold
from signalvault.trail.audit import AuditTrail

EVENT_KIND = "legal_hold"
MAX_VALUE = 256


def add_hold(
    store: Store, trail: AuditTrail, scope: str, value: str, reason: str | None, actor: str
) -> LegalHold:
    """Place a hold and record it.

    Raises:
        ConfigError: unknown scope, or an empty or too long value.
    """
    if scope not in HOLD_SCOPES:
        raise ConfigError(f"scope must be one of {', '.join(HOLD_SCOPES)}")
    if not value.strip() or len(value) > MAX_VALUE:
        raise ConfigError(f"a hold needs a value of 1 to {MAX_VALUE} characters")
    hold = LegalHold(
        id="hold_" + uuid.uuid4().hex[:16],
        scope=scope,
        value=value,
        reason=reason,
        created_at=time.time(),
        created_by=actor,
        released_at=None,
        released_by=None,
    )
    store.add_hold(hold)
    _record(trail, "add", hold, actor)
    return hold


def release_hold(store: Store, trail: AuditTrail, hold_id: str, actor: str) -> LegalHold:
    """Release an active hold and record it.

    Raises:
        ConfigError: there is no active hold with that id.
    """
    hold = store.release_hold(hold_id, actor, time.time())
    if hold is None:
        raise ConfigError(f"no active legal hold with id {hold_id}")
    _record(trail, "release", hold, actor)
    return hold


def _record(trail: AuditTrail, action: str, hold: LegalHold, actor: str) -> None:
    # A user id goes in the end_user column, never in details: erasing that user later
    # tombstones these events too instead of leaving the id in clear.
    details: dict[str, Any] = {"action": action, "hold_id": hold.id, "scope": hold.scope}
    if hold.scope != "user":
        details["value"] = hold.value
    if action == "add" and hold.reason:
        details["reason"] = hold.reason
    end_user = hold.value if hold.scope == "user" else None
    project = hold.value if hold.scope == "project" else None
    trail.record_event(EVENT_KIND, actor, details, project=project, end_user=end_user)


def hold_json(hold: LegalHold) -> dict[str, Any]:
    return {
        "id": hold.id,
        "scope": hold.scope,
        "value": hold.value,
        "reason": hold.reason,
        "status": "released" if hold.released_at else "active",
        "created_at": iso(hold.created_at),
        "created_by": hold.created_by,
        "released_at": iso(hold.released_at),
        "released_by": hold.released_by,
    }
