"""`signalvault keys`: create, list, rotate and revoke gateway keys (secrets shown once, stored
only as a hash); each command parses its arguments and calls the key ring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from signalvault.cli.options import CONFIG_OPTION, ErrorGroup, opened
from signalvault.config import load_settings
from signalvault.console import cli_actor, format_table, iso


@click.group(cls=ErrorGroup)
def keys() -> None:
    """Create, list, rotate and revoke gateway keys."""


@keys.command("create")
@CONFIG_OPTION
@click.option("--name", required=True, help="What the key is for.")
@click.option("--env", "environment", required=True, help="Environment: prod, staging, dev, ...")
@click.option("--project", default="default", show_default=True, help="Project the key belongs to.")
@click.option(
    "--models", default="", help="Comma-separated model globs the key may use (default: all)."
)
@click.option(
    "--rpm", type=click.IntRange(min=1), default=None, help="Requests per minute (default: none)."
)
@click.option(
    "--tpm", type=click.IntRange(min=1), default=None, help="Tokens per minute (default: none)."
)
@click.option(
    "--budget-tokens",
    type=click.IntRange(min=1),
    default=None,
    help="Tokens per calendar month, UTC (default: none).",
)
@click.option("--expires", default=None, help="Lifetime, e.g. 30d, 12h.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def keys_create(
    config_file: Path | None,
    name: str,
    environment: str,
    project: str,
    models: str,
    rpm: int | None,
    tpm: int | None,
    budget_tokens: int | None,
    expires: str | None,
    as_json: bool,
) -> None:
    """Create a key and print its secret (shown once, stored only as a hash)."""
    from signalvault.control.projects import ProjectRegistry, check_project_name
    from signalvault.crypto.gateway_keys import parse_duration
    from signalvault.gateway.keyring import record_key_event

    # Validate input before opening the store: bad input must not create a data directory.
    expires_in = parse_duration(expires) if expires else None
    check_project_name(project)
    with opened(load_settings(config_file)) as services:
        key, secret = services.keyring.create(
            name=name,
            environment=environment,
            project=project,
            models=tuple(m.strip() for m in models.split(",") if m.strip()),
            rpm=rpm,
            tpm=tpm,
            budget_tokens=budget_tokens,
            expires_in=expires_in,
        )
        # A key in a project nobody registered yet registers it (audited).
        ProjectRegistry(services.store, services.trail).ensure(project, cli_actor(), "gateway_key")
        record_key_event(services.trail, "create", cli_actor(), key)
    if as_json:
        click.echo(orjson.dumps({**_key_json(key), "secret": secret}).decode())
        return
    click.echo(f"Created key {key.id} ({key.name}, {key.environment}). Its secret, shown only now:")
    click.echo(secret)


@keys.command("list")
@CONFIG_OPTION
@click.option("--prefix", default=None, help="Only keys whose visible prefix starts with this.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def keys_list(config_file: Path | None, prefix: str | None, as_json: bool) -> None:
    """List keys (never their secrets)."""

    with opened(load_settings(config_file)) as services:
        found = services.store.list_keys(prefix)
    rows = [_key_json(k) for k in found]
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        return
    click.echo(
        format_table(
            rows,
            [
                "id",
                "name",
                "prefix",
                "environment",
                "project",
                "models",
                "rpm",
                "tpm",
                "budget_tokens",
                "status",
                "created_at",
                "last_used_at",
                "grace_until",
            ],
        )
    )


@keys.command("rotate")
@CONFIG_OPTION
@click.argument("key_id")
@click.option(
    "--grace",
    default="24h",
    show_default=True,
    help="How long the old secret keeps working, e.g. 24h, 30m, 0 (ends it now).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def keys_rotate(config_file: Path | None, key_id: str, grace: str, as_json: bool) -> None:
    """Give a key a new secret (shown once); the old one works until the grace period ends."""
    from signalvault.crypto.gateway_keys import parse_duration
    from signalvault.gateway.keyring import rotate_key

    grace_seconds = parse_duration(grace)
    with opened(load_settings(config_file)) as services:
        key, secret = rotate_key(
            services.keyring, services.trail, key_id, cli_actor(), grace_seconds
        )
    if as_json:
        click.echo(orjson.dumps({**_key_json(key), "secret": secret}).decode())
        return
    click.echo(
        f"Rotated key {key.id} ({key.name}). The old secret ({key.previous_prefix}...) works "
        f"until {iso(key.grace_until)}. The new secret, shown only now:"
    )
    click.echo(secret)


@keys.command("revoke")
@CONFIG_OPTION
@click.argument("key_id")
def keys_revoke(config_file: Path | None, key_id: str) -> None:
    """Revoke a key (every secret it has); it is refused from the next request on."""
    from signalvault.gateway.keyring import record_key_event

    with opened(load_settings(config_file)) as services:
        key = services.keyring.revoke(key_id)
        record_key_event(services.trail, "revoke", cli_actor(), key)
    click.echo(f"Revoked {key.id} ({key.name}).")


def _key_json(key: Any) -> dict[str, Any]:
    status = "revoked" if key.revoked_at else ("expired" if key.is_expired() else "active")
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "environment": key.environment,
        "project": key.project,
        "models": ",".join(key.models) or "*",
        "rpm": key.rpm,
        "tpm": key.tpm,
        "budget_tokens": key.budget_tokens,
        "status": status,
        "created_at": iso(key.created_at),
        "expires_at": iso(key.expires_at),
        "revoked_at": iso(key.revoked_at),
        "last_used_at": iso(key.last_used_at),
        "rotated_at": iso(key.rotated_at),
        "previous_prefix": key.previous_prefix,
        # Only while the previous secret still works.
        "grace_until": iso(key.grace_until) if key.is_in_grace() else None,
    }
