"""CLI commands for the deployment's settings: show the effective configuration (secrets masked),
and set or unset the run-time overrides every running gateway picks up without a restart."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from signalvault.cli.options import CONFIG_OPTION, opened
from signalvault.config import load_settings
from signalvault.console import cli_actor, format_table

if TYPE_CHECKING:
    from signalvault.control.runtime_settings import Change


def _shown(value: Any) -> str:
    return orjson.dumps(value).decode() if not isinstance(value, str) else value


@click.group()
def settings() -> None:
    """Show the effective settings; change the ones that apply at run time."""


@settings.command("show")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def settings_show(config_file: Path | None, as_json: bool) -> None:
    """Every setting with its effective value and source (secrets: only whether they are set)."""
    from signalvault.control.effective_settings import describe
    from signalvault.control.runtime_settings import load_overrides

    config = load_settings(config_file)
    with opened(config) as services:
        entries = describe(config, load_overrides(services.store))
    if as_json:
        for entry in entries:
            click.echo(orjson.dumps(entry).decode())
        return
    rows = [
        {
            "name": e["name"],
            "value": ("(set)" if e["is_set"] else "(not set)")
            if e["is_secret"]
            else _shown(e["value"]),
            "source": e["source"] or "?",
            "runtime": "yes" if e["is_runtime"] else "",
            "updated_by": e["updated_by"],
        }
        for e in entries
    ]
    click.echo(format_table(rows, ["name", "value", "source", "runtime", "updated_by"]))


@settings.command("set")
@CONFIG_OPTION
@click.argument("name")
@click.argument("value")
def settings_set(config_file: Path | None, name: str, value: str) -> None:
    """Override a run-time setting (e.g. `limits.user_rpm 60`, `alerts.events a,b`)."""
    from signalvault.control.settings_allowlist import RUNTIME, check_changes
    from signalvault.errors import BadRequest

    spec = RUNTIME.get(name)
    if spec is None:
        check_changes({name: None})  # raises, saying why the name is refused
        return
    try:
        parsed = spec.parse(value)
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from None
    _change(config_file, name, parsed)


@settings.command("unset")
@CONFIG_OPTION
@click.argument("name")
def settings_unset(config_file: Path | None, name: str) -> None:
    """Remove a run-time override: the configured value applies again."""
    _change(config_file, name, None)


def _change(config_file: Path | None, name: str, value: Any) -> None:
    from signalvault.control.runtime_settings import change_settings
    from signalvault.control.settings_allowlist import RUNTIME

    config = load_settings(config_file)
    with opened(config) as services:
        change: Change = change_settings(
            services.store, services.trail, config, {name: value}, cli_actor()
        )[0]
    how = "override removed" if change.is_reset else "overridden"
    click.echo(
        f"{name}: {_shown(change.before)} -> {_shown(change.after)} ({how}; running gateways "
        f"apply it from {RUNTIME[name].effect})."
    )
