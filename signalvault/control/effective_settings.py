"""What a deployment actually runs with: every setting (sections, providers, routes) with its
effective value, where it came from and whether it can change at run time. Secrets are never
read: only whether they are set and from where. Used by GET /api/settings and `settings show`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict, get_args, get_type_hints

from signalvault.config import SECTIONS, Secret, Settings
from signalvault.console import iso
from signalvault.control.runtime_settings import Override, overlay
from signalvault.control.settings_allowlist import RUNTIME, to_json

DEFAULT, RUNTIME_SOURCE = "default", "runtime"
# Plain-text settings that can carry a credential (a webhook URL with a token in it): shown
# like secrets, set or not.
SENSITIVE = frozenset({"audit.checkpoint_webhook"})
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@]*@")


class SettingEntry(TypedDict):
    name: str  # "limits.user_rpm", "providers.openai.api_key", "routes.0.targets"
    value: Any  # JSON; always null for a secret
    is_secret: bool
    is_set: bool  # a value is present (for secrets, the only thing said about it)
    source: str | None  # default | file | env | runtime; null when unknown (built in code)
    is_runtime: bool  # PATCH /api/settings may change it
    config_value: Any  # with source `runtime`: the configured value the override replaces
    updated_at: str | None  # with source `runtime`: when and by whom it was overridden
    updated_by: str | None


class RuntimeEntry(TypedDict):
    name: str
    takes_effect: str


def describe(settings: Settings, overrides: Mapping[str, Override]) -> list[SettingEntry]:
    """Every setting of `settings` with `overrides` applied, in config order."""
    effective = overlay(settings, overrides)
    entries: list[SettingEntry] = []
    for section in SECTIONS:
        entries += _table(
            settings,
            getattr(effective, section),
            getattr(settings, section),
            section,
            section,
            overrides,
        )
    for i, provider in enumerate(effective.providers):
        entries += _table(
            settings, provider, provider, f"providers.{provider.name}", f"providers.{i}", {}
        )
    for i, route in enumerate(effective.routes):
        entries += _table(settings, route, route, f"routes.{i}", f"routes.{i}", {})
    return entries


def runtime_catalogue() -> list[RuntimeEntry]:
    """The settings PATCH /api/settings accepts, and when a change takes effect."""
    return [RuntimeEntry(name=s.name, takes_effect=s.effect) for s in RUNTIME.values()]


def _table(
    settings: Settings,
    table: Any,
    configured: Any,
    prefix: str,
    source_prefix: str,
    overrides: Mapping[str, Override],
) -> list[SettingEntry]:
    hints = get_type_hints(type(table))
    entries = []
    for f in dataclasses.fields(table):
        name = f"{prefix}.{f.name}"
        value = getattr(table, f.name)
        is_secret = _is_secret(hints[f.name]) or name in SENSITIVE
        override = overrides.get(name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        source = settings.sources.get(f"{source_prefix}.{f.name}")
        if override is not None:
            source = RUNTIME_SOURCE
        elif source is None and _same(value, default):
            source = DEFAULT
        entries.append(
            SettingEntry(
                name=name,
                value=None if is_secret else _json(value),
                is_secret=is_secret,
                is_set=_is_set(value),
                source=source,
                is_runtime=name in RUNTIME,
                config_value=(
                    None if override is None or is_secret else _json(getattr(configured, f.name))
                ),
                updated_at=None if override is None else iso(override.updated_at),
                updated_by=None if override is None else override.updated_by,
            )
        )
    return entries


def _is_secret(hint: Any) -> bool:
    return hint is Secret or Secret in get_args(hint)


def _is_set(value: Any) -> bool:
    return value is not None and value != "" and value != ()


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, Secret) or isinstance(default, Secret):
        return False  # never compared: a default secret does not exist
    return bool(_json(value) == _json(default))


def _json(value: Any) -> Any:
    if isinstance(value, Secret):  # never revealed, whatever the caller's field says
        return None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        # A URL may carry a password (https://user:password@host): shown without it.
        return _USERINFO.sub(r"\1****@", value)
    return to_json(value)
