"""CLI commands for provider credentials: store one encrypted (read from stdin, never argv),
list them masked, remove one. Each parses its arguments and calls one service function."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from signalvault.cli.options import CONFIG_OPTION, opened
from signalvault.config import ProviderSettings, load_settings
from signalvault.console import cli_actor, format_table, iso
from signalvault.errors import ConfigError

ENV_OPTION = click.option(
    "--env",
    "environment",
    default=None,
    help="Only for gateway keys of this environment (default: every environment).",
)


@click.group()
def providers() -> None:
    """Provider credentials stored encrypted in the gateway's store."""


@providers.command("set-key")
@CONFIG_OPTION
@click.argument("name")
@ENV_OPTION
@click.option(
    "--key-stdin",
    is_flag=True,
    help="Read the credential from standard input (else prompt for it, hidden).",
)
def providers_set_key(
    config_file: Path | None, name: str, environment: str | None, key_stdin: bool
) -> None:
    """Store (or replace) a provider's credential; running gateways use it on their next request."""
    settings = load_settings(config_file)
    if key_stdin:
        secret = sys.stdin.read()
    elif sys.stdin.isatty():
        secret = click.prompt("Credential", hide_input=True, confirmation_prompt=True)
    else:
        raise ConfigError("pass --key-stdin to read the credential from standard input")
    with opened(settings) as services:
        info = services.credentials.set(name, secret, cli_actor(), environment)
    scope = f"environment {info.environment}" if info.environment else "every environment"
    verb = "Replaced" if info.rotated_at is not None else "Stored"
    click.echo(f"{verb} the credential of {name} for {scope}: {info.masked}")


@providers.command("remove-key")
@CONFIG_OPTION
@click.argument("name")
@ENV_OPTION
def providers_remove_key(config_file: Path | None, name: str, environment: str | None) -> None:
    """Delete a stored credential; requests fall back to the next one in order at once."""
    with opened(load_settings(config_file)) as services:
        info = services.credentials.remove(name, cli_actor(), environment)
    scope = f"environment {info.environment}" if info.environment else "every environment"
    click.echo(f"Removed the stored credential of {name} for {scope} ({info.masked}).")


@providers.command("list")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def providers_list(config_file: Path | None, as_json: bool) -> None:
    """Configured providers and stored credentials, masked (never a whole secret)."""
    settings = load_settings(config_file)
    with opened(settings) as services:
        stored = services.credentials.list_masked()
    wide = {c.provider for c in stored if c.environment is None}
    rows: list[dict[str, Any]] = [
        _configured_row(p, overridden=p.name in wide) for p in settings.providers
    ]
    for info in stored:
        rows.append(
            {
                "provider": info.provider,
                "environment": info.environment or "*",
                "source": "stored",
                "credential": info.masked,
                "in_use": info.provider in {p.name for p in settings.providers},
                "master_key_id": info.master_key_id,
                "created_at": iso(info.created_at),
                "created_by": info.created_by,
                "rotated_at": iso(info.rotated_at),
                "rotated_by": info.rotated_by,
            }
        )
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        return
    click.echo(
        format_table(
            rows,
            [
                "provider",
                "environment",
                "source",
                "credential",
                "in_use",
                "created_at",
                "rotated_at",
            ],
        )
    )


def _configured_row(provider: ProviderSettings, *, overridden: bool) -> dict[str, Any]:
    """The configuration's key for a provider: where it comes from, masked."""
    from signalvault.control.credentials import HINT_CHARS, HINT_MIN_CHARS, mask

    if provider.api_key_env:
        source = f"config:api_key_env={provider.api_key_env}"
    elif provider.api_key_file is not None:
        source = "config:api_key_file"
    elif provider.api_key is not None:
        source = "config:api_key"
    else:
        source = "none"
    key = provider.api_key.reveal() if provider.api_key is not None else None
    credential = None
    if key is not None:
        credential = mask(key[-HINT_CHARS:] if len(key) >= HINT_MIN_CHARS else "")
    return {
        "provider": provider.name,
        "environment": "*",
        "source": source,
        "credential": credential,
        "in_use": not overridden and source != "none",
        "master_key_id": None,
        "created_at": None,
        "created_by": None,
        "rotated_at": None,
        "rotated_by": None,
    }
