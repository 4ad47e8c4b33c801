"""CLI commands for projects: `projects create/list/show`. Each parses its arguments and calls the
project registry (which audits every change)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from signalvault.cli.options import CONFIG_OPTION, opened
from signalvault.config import Settings, load_settings
from signalvault.console import cli_actor, format_table, iso
from signalvault.control.projects import check_description, check_project_name

if TYPE_CHECKING:
    from signalvault.control.projects import ProjectDetail, ProjectRegistry, RoleHolder
    from signalvault.control.services import Services
    from signalvault.store.project_queries import Project

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@contextmanager
def _registry(settings: Settings) -> Iterator[tuple[ProjectRegistry, Services]]:
    from signalvault.control.projects import ProjectRegistry

    with opened(settings) as services:
        yield ProjectRegistry(services.store, services.trail), services


@click.group()
def projects() -> None:
    """Projects: what keys, account roles, retention and legal holds refer to."""


@projects.command("create")
@CONFIG_OPTION
@click.argument("name")
@click.option("--description", default="", help="What the project is (at most 1000 characters).")
@JSON_OPTION
def projects_create(config_file: Path | None, name: str, description: str, as_json: bool) -> None:
    """Register a project (keys, roles and retention overrides also register theirs)."""
    # Validate before opening the store: bad input must not create a data directory.
    check_project_name(name)
    check_description(description)
    with _registry(load_settings(config_file)) as (registry, _):
        project = registry.create(name, description, cli_actor())
    if as_json:
        click.echo(orjson.dumps(_project_json(project)).decode())
        return
    click.echo(f"Created project {project.name}.")


@projects.command("list")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def projects_list(config_file: Path | None, as_json: bool) -> None:
    """List registered projects by name."""
    with _registry(load_settings(config_file)) as (registry, _):
        rows = [_project_json(p) for p in registry.list_all()]
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        return
    click.echo(
        format_table(rows, ["name", "description", "created_at", "created_by", "updated_at"])
    )


@projects.command("show")
@CONFIG_OPTION
@click.argument("name")
@JSON_OPTION
def projects_show(config_file: Path | None, name: str, as_json: bool) -> None:
    """A project: its keys per environment, retention in force, legal holds and accounts."""
    from signalvault.control.projects import role_holders
    from signalvault.store.account_queries import AccountQueries

    settings = load_settings(config_file)
    with _registry(settings) as (registry, services):
        detail = registry.detail(name, settings.retention)
        holders = role_holders(AccountQueries(services.store.engine).list_accounts(), name)
    shown = _detail_json(detail, holders)
    if as_json:
        click.echo(orjson.dumps(shown).decode())
        return
    keys = "; ".join(
        f"{env}: {c['active']} active, {c['revoked']} revoked, {c['expired']} expired"
        for env, c in shown["keys"].items()
    )
    retention = shown["retention"]
    days = f"{retention['days']} days" if retention["days"] else "kept forever"
    lines = [
        f"name:        {shown['name']}",
        f"description: {shown['description']}",
        f"created:     {shown['created_at']} by {shown['created_by']}",
        "updated:     "
        + (f"{shown['updated_at']} by {shown['updated_by']}" if shown["updated_at"] else "-"),
        f"keys:        {keys or '(none)'}",
        f"retention:   {days} ({retention['source']})",
        f"legal holds: {shown['legal_holds']} active",
        "accounts:    "
        + (", ".join(f"{a['email']} ({a['role']})" for a in shown["accounts"]) or "(none)"),
    ]
    click.echo("\n".join(lines))


def _project_json(project: Project) -> dict[str, Any]:
    return {
        "name": project.name,
        "description": project.description,
        "created_at": iso(project.created_at),
        "created_by": project.created_by,
        "updated_at": iso(project.updated_at),
        "updated_by": project.updated_by,
    }


def _detail_json(detail: ProjectDetail, holders: list[RoleHolder]) -> dict[str, Any]:
    return {
        **_project_json(detail.project),
        "keys": {
            env: {"active": c.active, "revoked": c.revoked, "expired": c.expired}
            for env, c in detail.keys.items()
        },
        "retention": {"days": detail.retention.days, "source": detail.retention.source},
        "legal_holds": detail.legal_holds,
        "accounts": [
            {"account_id": h.account_id, "email": h.email, "role": h.role, "disabled": h.disabled}
            for h in holders
        ],
    }
