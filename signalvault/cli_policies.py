"""CLI commands for guardrail policy change control: list, show (with the diff), propose,
approve, reject, roll back. The acting account is the operating-system user (`cli:<user>`), so a
second person approves from their own login."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import orjson

from signalvault.cli_options import CONFIG_OPTION
from signalvault.config import load_settings
from signalvault.console import cli_actor, format_table, iso
from signalvault.errors import ConfigError
from signalvault.policies import PolicyService, version_json

REASON_OPTION = click.option("--reason", default=None, help="Why (a ticket reference).")


@contextmanager
def _service(config_file: Path | None) -> Iterator[PolicyService]:
    from signalvault.app import open_services  # the gateway's imports only when needed

    settings = load_settings(config_file)
    services = open_services(settings)
    try:
        yield PolicyService(
            services.store, services.trail, review=settings.guardrails.two_person_review
        )
    finally:
        services.sealer.close()
        services.store.close()


def read_rules_file(path: Path) -> list[Any]:
    """Rules from a JSON file (a list, or {"rules": [...]}) or a TOML file (`[[rules]]` or
    `[[guardrails.rules]]` tables).

    Raises:
        ConfigError: unreadable, malformed, or no rules list in it.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() == ".json":
            data: Any = orjson.loads(raw)
        else:
            data = tomllib.loads(raw.decode())
    except (orjson.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{path} is not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}"
        ) from None
    if isinstance(data, dict):
        nested = data.get("guardrails")
        data = data.get("rules", nested.get("rules") if isinstance(nested, dict) else None)
    if not isinstance(data, list):
        raise ConfigError(f"{path} holds no list of rules (`rules` or `guardrails.rules`)")
    return data


@click.group("policies")
def policies() -> None:
    """Guardrail policy versions and their two-person review."""


@policies.command("list")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, rules included.")
def policies_list(config_file: Path | None, as_json: bool) -> None:
    """Every policy version with its proposer, approver, status and times."""
    with _service(config_file) as service:
        versions = service.versions()
    if as_json:
        for version in versions:
            click.echo(orjson.dumps(version_json(version)).decode())
        return
    rows = [
        {
            "version": v.version,
            "status": v.status,
            "source": v.source,
            "base": v.base_version,
            "proposed_by": v.created_by,
            "proposed_at": iso(v.created_at),
            "decided_by": v.decided_by,
            "decided_at": iso(v.decided_at),
            "reason": v.reason,
        }
        for v in versions
    ]
    click.echo(format_table(rows, list(rows[0]) if rows else []))


@policies.command("show")
@CONFIG_OPTION
@click.argument("version", type=int)
@click.option("--diff", "with_diff", is_flag=True, help="The change against its base version.")
def policies_show(config_file: Path | None, version: int, with_diff: bool) -> None:
    """One version as JSON, or its diff against the version active when it was proposed."""
    with _service(config_file) as service:
        if not with_diff:
            click.echo(orjson.dumps(version_json(service.get(version)), option=orjson.OPT_INDENT_2))
            return
        diff = service.diff(version)
    for change in diff.changes:
        fields = f" ({', '.join(change.fields)})" if change.fields else ""
        click.echo(f"{change.change} {change.name}{fields}")
    if diff.reordered:
        click.echo("rules reordered")
    click.echo(diff.text, nl=False)


@policies.command("propose")
@CONFIG_OPTION
@click.option(
    "--file",
    "rules_file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Rules as TOML ([[rules]]) or JSON (a list).",
)
@REASON_OPTION
def policies_propose(config_file: Path | None, rules_file: Path, reason: str | None) -> None:
    """Propose a new policy version (active at once only with review off)."""
    raw = read_rules_file(rules_file)
    with _service(config_file) as service:
        proposed = service.propose(raw, cli_actor(), reason, source="cli")
        diff = service.diff(proposed.version)
    summary = diff.summary()
    click.echo(
        f"Policy version {proposed.version} is {proposed.status} "
        f"(base {proposed.base_version}): added {len(summary['added'])}, "
        f"removed {len(summary['removed'])}, changed {len(summary['changed'])} rule(s)."
    )


@policies.command("approve")
@CONFIG_OPTION
@click.argument("version", type=int)
def policies_approve(config_file: Path | None, version: int) -> None:
    """Approve a proposal (not your own): it becomes the active policy."""
    with _service(config_file) as service:
        approved = service.approve(version, cli_actor())
    click.echo(f"Policy version {approved.version} is active.")


@policies.command("reject")
@CONFIG_OPTION
@click.argument("version", type=int)
@REASON_OPTION
def policies_reject(config_file: Path | None, version: int, reason: str | None) -> None:
    """Reject a proposal."""
    with _service(config_file) as service:
        rejected = service.reject(version, cli_actor(), reason)
    click.echo(f"Policy version {rejected.version} is rejected.")


@policies.command("rollback")
@CONFIG_OPTION
@click.argument("version", type=int)
@REASON_OPTION
def policies_rollback(config_file: Path | None, version: int, reason: str | None) -> None:
    """Propose an earlier version's rules again (reviewed like any change)."""
    with _service(config_file) as service:
        proposed = service.rollback(version, cli_actor(), reason)
    click.echo(
        f"Policy version {proposed.version} (the rules of version {version}) is {proposed.status}."
    )
