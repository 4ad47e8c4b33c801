"""`signalvault incidents`: list, show, acknowledge and resolve the incidents raised from alerts
(SPEC §7c). Changes are recorded in the trail as the OS account running the command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from signalvault.cli.options import CONFIG_OPTION, opened
from signalvault.config import load_settings
from signalvault.console import format_table

COLUMNS = ["id", "kind", "scope", "severity", "status", "count", "first_seen", "last_seen"]


@click.group()
def incidents() -> None:
    """Incidents raised from alerts: list, show, ack, resolve."""


@incidents.command("list")
@CONFIG_OPTION
@click.option("--status", type=click.Choice(["open", "acknowledged", "resolved"]), default=None)
@click.option("--kind", default=None, help="Only this alert kind (e.g. secrets_blocked).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_incidents(
    config_file: Path | None, status: str | None, kind: str | None, limit: int, as_json: bool
) -> None:
    """Incidents, newest first."""
    with opened(load_settings(config_file)) as services:
        found = services.incidents.list(status=status, kind=kind, limit=limit)
    rows = [i.as_json() for i in found]
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        return
    click.echo(format_table(rows, COLUMNS))


@incidents.command("show")
@CONFIG_OPTION
@click.argument("incident_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def show(config_file: Path | None, incident_id: str, as_json: bool) -> None:
    """One incident with its linked records and response times."""
    with opened(load_settings(config_file)) as services:
        incident = services.incidents.get(incident_id).as_json()
    if as_json:
        click.echo(orjson.dumps(incident).decode())
        return
    _print(incident)


def _print(incident: dict[str, Any]) -> None:
    for name, value in incident.items():
        if name == "record_ids":
            shown = ", ".join(value[:20]) + (
                f" (+{len(value) - 20} more)" if len(value) > 20 else ""
            )
            click.echo(f"{'records':>22}: {shown or '(none)'}")
        elif value not in (None, {}, []):
            text = orjson.dumps(value).decode() if isinstance(value, dict) else value
            click.echo(f"{name.replace('_', ' '):>22}: {text}")


def _change(config_file: Path | None, incident_id: str, note: str, resolve: bool) -> None:
    from signalvault.console import cli_actor
    from signalvault.evidence.hooks import delivering

    settings = load_settings(config_file)
    with opened(settings) as services, delivering(settings, services.incidents) as book:
        if resolve:
            incident = book.resolve(incident_id, cli_actor(), note)
        else:
            incident = book.acknowledge(incident_id, cli_actor(), note)
    took = incident.seconds_to_resolve if resolve else incident.seconds_to_acknowledge
    click.echo(f"incident {incident.id} {incident.status} ({took:.0f}s after it opened)")


@incidents.command("ack")
@CONFIG_OPTION
@click.argument("incident_id")
@click.option("--note", default="", help="What is being done (recorded in the trail).")
def ack(config_file: Path | None, incident_id: str, note: str) -> None:
    """Acknowledge an open incident."""
    _change(config_file, incident_id, note, resolve=False)


@incidents.command("resolve")
@CONFIG_OPTION
@click.argument("incident_id")
@click.option("--note", required=True, help="What was done (required; recorded in the trail).")
def resolve(config_file: Path | None, incident_id: str, note: str) -> None:
    """Resolve an incident with a note."""
    _change(config_file, incident_id, note, resolve=True)
