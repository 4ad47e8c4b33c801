"""Gateway keys: list, read, issue and rotate (secret shown once), revoke. Changes are audited."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from signalvault.console import iso
from signalvault.control.accounts.principal import Principal
from signalvault.control.api import authz
from signalvault.control.api.deps import Context, context, principal
from signalvault.control.api.models import (
    Key,
    KeyCreate,
    KeyCreated,
    KeyPage,
    KeyRotate,
    KeyRotated,
)
from signalvault.control.projects import ProjectRegistry
from signalvault.crypto.gateway_keys import GatewayKey
from signalvault.errors import Conflict, Forbidden, NotFound
from signalvault.gateway.keyring import rotate_key

router = APIRouter(tags=["keys"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]
EVENT_KIND = "admin"


def key_json(key: GatewayKey) -> dict[str, Any]:
    """A key's metadata; the prefix is the only part of the secret anyone sees again."""
    now = time.time()
    status = "revoked" if key.revoked_at else "expired" if key.is_expired(now) else "active"
    return {
        "id": key.id,
        "name": key.name,
        "project": key.project,
        "environment": key.environment,
        "prefix": key.prefix,
        "models": list(key.models),
        "rpm": key.rpm,
        "tpm": key.tpm,
        "budget_tokens": key.budget_tokens,
        "expires_at": iso(key.expires_at),
        "revoked_at": iso(key.revoked_at),
        "created_at": iso(key.created_at),
        "created_by": key.created_by,
        "last_used_at": iso(key.last_used_at),
        "status": status,
    }


def record_change(
    api: Context,
    who: Principal,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    project: str | None,
) -> None:
    """An admin change in the trail: who, what, before and after (never a secret)."""
    api.trail.record_event(
        EVENT_KIND,
        who.actor,
        {"action": action, "target": target, "before": before, "after": after},
        project=project,
    )


@router.get("/api/keys", response_model=KeyPage)
def list_keys(
    api: Ctx,
    who: Who,
    project: str | None = None,
    prefix: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> KeyPage:
    """Keys the caller may see, by id; `prefix` matches the start of the visible prefix."""
    keys = sorted(api.store.list_keys(prefix), key=lambda k: k.id)
    visible = [
        k
        for k in keys
        if (project is None or k.project == project)
        and (cursor is None or k.id > cursor)
        and authz.may_touch_key(who, "keys.read", k.project, k.created_by)
    ]
    page = visible[:limit]
    more = len(visible) > limit
    return KeyPage(
        data=[Key(**key_json(k)) for k in page], next_cursor=page[-1].id if more else None
    )


def _visible_key(api: Context, who: Principal, key_id: str) -> GatewayKey:
    key = api.store.get_key(key_id)
    if key is None or not authz.may_touch_key(who, "keys.read", key.project, key.created_by):
        raise NotFound("no such key")
    return key


@router.get("/api/keys/{key_id}", response_model=Key)
def get_key(key_id: str, api: Ctx, who: Who) -> Key:
    return Key(**key_json(_visible_key(api, who, key_id)))


@router.post("/api/keys", response_model=KeyCreated, status_code=201)
def create_key(body: KeyCreate, api: Ctx, who: Who) -> KeyCreated:
    """Issue a key in `project`; the response carries the secret, which is never shown again."""
    authz.require(who, "keys.write", body.project)
    key, secret = api.keyring.create(
        name=body.name,
        environment=body.environment,
        project=body.project,
        models=tuple(body.models),
        rpm=body.rpm,
        tpm=body.tpm,
        budget_tokens=body.budget_tokens,
        expires_in=body.expires_seconds,
        created_by=who.actor,
    )
    after = key_json(key)
    try:
        # A key in a project nobody registered yet registers it (audited).
        ProjectRegistry(api.store, api.trail).ensure(key.project, who.actor, "gateway_key")
        record_change(api, who, "key.create", key.id, None, after, key.project)
    except Exception:
        # Fail closed: a key whose issue is not in the trail must not work (its secret is
        # never shown either).
        api.keyring.revoke(key.id)
        raise
    return KeyCreated(**after, secret=secret)


@router.post("/api/keys/{key_id}/revoke", response_model=Key)
def revoke_key(key_id: str, api: Ctx, who: Who) -> Key:
    """Revoke a key; every gateway process refuses it from its next request on."""
    key = _visible_key(api, who, key_id)
    if not authz.may_touch_key(who, "keys.write", key.project, key.created_by):
        raise Forbidden("your role does not allow revoking this key", code="forbidden")
    if key.revoked_at is not None:
        raise Conflict("this key is already revoked")
    before = key_json(key)
    revoked = api.keyring.revoke(key_id)
    after = key_json(revoked)
    record_change(api, who, "key.revoke", key_id, before, after, key.project)
    return Key(**after)


@router.post("/api/keys/{key_id}/rotate", response_model=KeyRotated)
def rotate(key_id: str, body: KeyRotate, api: Ctx, who: Who) -> KeyRotated:
    """Give a key a new secret (shown once); the old one keeps working for `grace_seconds`."""
    key = _visible_key(api, who, key_id)
    if not authz.may_touch_key(who, "keys.write", key.project, key.created_by):
        raise Forbidden("your role does not allow rotating this key", code="forbidden")
    if key.revoked_at is not None or key.is_expired(time.time()):
        raise Conflict("this key is revoked or expired; create a new key instead")
    # rotate_key records the rotation (previous prefix, grace end) in the trail.
    rotated, secret = rotate_key(api.keyring, api.trail, key_id, who.actor, body.grace_seconds)
    return KeyRotated(
        **key_json(rotated),
        secret=secret,
        previous_prefix=rotated.previous_prefix,
        grace_until=iso(rotated.grace_until),
    )
