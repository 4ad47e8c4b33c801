"""The deployment's effective settings (secrets masked, each value's source) and the run-time
overrides admins may change. The services validate, store and audit; the routes check who may
ask and shape the answers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends

from signalvault.control.accounts.principal import Principal
from signalvault.control.api import authz
from signalvault.control.api.deps import Context, context, principal
from signalvault.control.api.models import (
    RuntimeSettingOut,
    SettingChange,
    SettingOut,
    SettingsChanged,
    SettingsView,
)
from signalvault.control.effective_settings import describe, runtime_catalogue
from signalvault.control.runtime_settings import change_settings, load_overrides

router = APIRouter(tags=["settings"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]
Changes = Annotated[
    dict[str, Any],
    Body(
        description='`{"<section>.<name>": value}`; null removes the override (the configured '
        "value applies again). Every item is checked before any is applied.",
        examples=[{"limits.user_rpm": 60, "accounts.session_idle_minutes": None}],
    ),
]


@router.get("/api/settings", response_model=SettingsView)
def get_settings(api: Ctx, who: Who) -> SettingsView:
    """Every setting the gateway runs with (run-time overrides applied), where each comes from,
    and which may change at run time. Secrets: only whether they are set and from where."""
    authz.require(who, "settings.read", None)
    entries = describe(api.settings, load_overrides(api.store))
    return SettingsView(
        data=[SettingOut.model_validate(entry) for entry in entries],
        runtime_settings=[RuntimeSettingOut(**entry) for entry in runtime_catalogue()],
    )


@router.patch("/api/settings", response_model=SettingsChanged)
def patch_settings(body: Changes, api: Ctx, who: Who) -> SettingsChanged:
    """Override run-time settings in every gateway process from their next use, without a
    restart; audited as one `settings` record with each value before and after."""
    authz.require(who, "settings.write", None)
    changes = change_settings(api.store, api.trail, api.settings, body, who.actor)
    return SettingsChanged(
        changes=[
            SettingChange(name=c.name, before=c.before, after=c.after, is_reset=c.is_reset)
            for c in changes
        ]
    )
