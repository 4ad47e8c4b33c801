"""Retention policy and legal holds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from signalvault.control.accounts.principal import Principal
from signalvault.control.api import authz
from signalvault.control.api.deps import Context, context, principal
from signalvault.control.api.key_routes import record_change
from signalvault.control.api.trail_models import (
    LegalHold,
    LegalHoldCreate,
    LegalHoldPage,
    Retention,
    RetentionUpdate,
)
from signalvault.control.projects import ProjectRegistry
from signalvault.errors import NotFound
from signalvault.store.lifecycle import LegalHold as StoredHold
from signalvault.trail.legal_holds import add_hold, hold_json, release_hold
from signalvault.trail.retention import (
    RetentionPolicy,
    load_policy,
    set_default_days,
    set_project_days,
)

router = APIRouter(tags=["lifecycle"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]


def _retention(policy: RetentionPolicy, who: Principal, permission: str) -> Retention:
    projects = {
        name: days
        for name, days in sorted(policy.projects.items())
        if authz.role_allows(who, permission, name)
    }
    return Retention(default_days=policy.default_days, projects=projects)


@router.get("/api/retention", response_model=Retention)
def get_retention(api: Ctx, who: Who) -> Retention:
    """Days records are kept (0: forever): the default and the project overrides you may see."""
    policy = load_policy(api.store, api.settings.retention)
    return _retention(policy, who, "retention.read")


@router.put("/api/retention", response_model=Retention)
def put_retention(body: RetentionUpdate, api: Ctx, who: Who) -> Retention:
    """Change the default (needs the role globally) and/or project overrides (the role in each
    project). All are checked before any is applied; the change is audited with before/after."""
    if body.default_days is not None:
        authz.require(who, "retention.write", None)
    for name in body.projects:
        authz.require(who, "retention.write", name)
    before = load_policy(api.store, api.settings.retention)
    if body.default_days is not None:
        set_default_days(api.store, api.trail, body.default_days, who.actor)
    projects = ProjectRegistry(api.store, api.trail)
    for name, days in sorted(body.projects.items()):
        set_project_days(api.store, api.trail, name, days, who.actor)
        if days is not None:  # an override for a project nobody registered yet registers it
            projects.ensure(name, who.actor, "retention")
    after = load_policy(api.store, api.settings.retention)
    record_change(
        api,
        who,
        "retention.update",
        "retention",
        {"default_days": before.default_days, "projects": dict(before.projects)},
        {"default_days": after.default_days, "projects": dict(after.projects)},
        None,
    )
    return _retention(after, who, "retention.read")


def _hold_project(hold: StoredHold) -> str | None:
    """Project holds are a project's business; every other scope is global."""
    return hold.value if hold.scope == "project" else None


def _hold_model(hold: StoredHold) -> LegalHold:
    return LegalHold(**hold_json(hold))


@router.get("/api/legal-holds", response_model=LegalHoldPage)
def list_holds(api: Ctx, who: Who, include_released: bool = False) -> LegalHoldPage:
    holds = api.store.list_holds(include_released=include_released)
    visible = [h for h in holds if authz.role_allows(who, "holds.read", _hold_project(h))]
    return LegalHoldPage(data=[_hold_model(h) for h in visible], next_cursor=None)


@router.post("/api/legal-holds", response_model=LegalHold, status_code=201)
def create_hold(body: LegalHoldCreate, api: Ctx, who: Who) -> LegalHold:
    """Suspend retention and erasure of a project, key, end user or record (audited)."""
    authz.require(who, "holds.write", body.value if body.scope == "project" else None)
    hold = add_hold(api.store, api.trail, body.scope, body.value, body.reason, who.actor)
    return _hold_model(hold)


@router.delete("/api/legal-holds/{hold_id}", response_model=LegalHold)
def delete_hold(hold_id: str, api: Ctx, who: Who) -> LegalHold:
    """Release an active hold (audited); the record of it stays."""
    hold = next((h for h in api.store.list_holds() if h.id == hold_id), None)
    if hold is None or not authz.role_allows(who, "holds.read", _hold_project(hold)):
        raise NotFound("no active legal hold with that id")
    authz.require(who, "holds.write", _hold_project(hold))
    return _hold_model(release_hold(api.store, api.trail, hold_id, who.actor))
