"""The `signalvault` command: click commands that parse arguments and call one service each.

Errors a user can cause end as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from signalvault import __version__
from signalvault.cli.audit import audit
from signalvault.cli.export import export, subject_export
from signalvault.cli.options import CONFIG_OPTION
from signalvault.cli.policies import policies
from signalvault.config import Settings, load_settings
from signalvault.console import cli_actor, format_table, iso
from signalvault.errors import SignalVaultError


class _Group(click.Group):
    """Turns SignalVaultError into a one-line error (exit 1) instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SignalVaultError as exc:
            raise click.ClickException(str(exc)) from None


def _settings(config_file: Path | None) -> Settings:
    return load_settings(config_file)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="signalvault")
def cli() -> None:
    """SignalVault: an AI gateway with guardrails and an encrypted, tamper-evident audit trail."""


@cli.command()
@CONFIG_OPTION
@click.option("--host", default=None, help="Listen address (default from config: 127.0.0.1).")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Listen port (default from config: 8700).",
)
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="Worker processes (default 1)."
)
def serve(
    config_file: Path | None, host: str | None, port: int | None, workers: int | None
) -> None:
    """Run the gateway."""
    from signalvault.server import serve as run_server

    settings = _settings(config_file)
    run_server(settings, config_file, host=host, port=port, workers=workers)


@cli.command("mock-provider")
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address.")
@click.option("--port", type=int, default=8790, show_default=True, help="Listen port.")
@click.option(
    "--latency-ms", type=float, default=0.0, show_default=True, help="Delay before answering."
)
@click.option(
    "--chunk-delay-ms",
    type=float,
    default=0.0,
    show_default=True,
    help="Delay between stream events.",
)
@click.option("--chunks", type=int, default=8, show_default=True, help="Pieces per streamed reply.")
@click.option(
    "--fail-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Fraction answered with an error.",
)
@click.option("--seed", type=int, default=None, help="Random seed for failures.")
def mock_provider(
    host: str,
    port: int,
    latency_ms: float,
    chunk_delay_ms: float,
    chunks: int,
    fail_rate: float,
    seed: int | None,
) -> None:
    """Run a local OpenAI + Anthropic compatible provider (GET /stats counts what it received)."""
    from signalvault.mock_provider import MockOptions, run

    if not 0.0 <= fail_rate <= 1.0:
        raise click.BadParameter("must be between 0 and 1", param_hint="--fail-rate")
    options = MockOptions(
        latency_ms=latency_ms,
        chunk_delay_ms=chunk_delay_ms,
        chunks=chunks,
        fail_rate=fail_rate,
        seed=seed,
    )
    click.echo(f"mock provider on http://{host}:{port}/v1 (Ctrl-C stops)", err=True)
    run(host, port, options)


@cli.command()
@CONFIG_OPTION
@click.option(
    "--no-wait", is_flag=True, help="Exit after the summary instead of serving until Ctrl-C."
)
@click.option("--port", type=int, default=8700, show_default=True, help="Gateway port.")
def demo(config_file: Path | None, no_wait: bool, port: int) -> None:
    """Gateway + mock provider + sample traffic through the official SDKs, then what was logged."""
    from signalvault.cli.demo import run_demo

    run_demo(port=port, wait=not no_wait)


@cli.group(cls=_Group)
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
    from signalvault.control.services import open_services
    from signalvault.crypto.gateway_keys import parse_duration
    from signalvault.gateway.keyring import record_key_event

    # Validate input before opening the store: bad input must not create a data directory.
    expires_in = parse_duration(expires) if expires else None
    check_project_name(project)
    services = open_services(_settings(config_file))
    try:
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
    finally:
        services.store.close()
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
    from signalvault.control.services import open_services

    services = open_services(_settings(config_file))
    try:
        found = services.store.list_keys(prefix)
    finally:
        services.store.close()
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
    from signalvault.control.services import open_services
    from signalvault.crypto.gateway_keys import parse_duration
    from signalvault.gateway.keyring import rotate_key

    grace_seconds = parse_duration(grace)
    services = open_services(_settings(config_file))
    try:
        key, secret = rotate_key(
            services.keyring, services.trail, key_id, cli_actor(), grace_seconds
        )
    finally:
        services.store.close()
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
    from signalvault.control.services import open_services
    from signalvault.gateway.keyring import record_key_event

    services = open_services(_settings(config_file))
    try:
        key = services.keyring.revoke(key_id)
        record_key_event(services.trail, "revoke", cli_actor(), key)
    finally:
        services.store.close()
    click.echo(f"Revoked {key.id} ({key.name}).")


@cli.command()
@CONFIG_OPTION
@click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=20,
    show_default=True,
    help="How many records.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--key", "key_id", default=None, help="Only this key id.")
@click.option("--user", "end_user", default=None, help="Only this end user.")
@click.option("--model", default=None, help="Only this model (requested or used).")
@click.option("--outcome", default=None, help="Only this outcome (ok, blocked, rejected, ...).")
def logs(
    config_file: Path | None,
    limit: int,
    as_json: bool,
    key_id: str | None,
    end_user: str | None,
    model: str | None,
    outcome: str | None,
) -> None:
    """Recent audit records, newest first (metadata only, never content)."""
    from signalvault.control.services import open_services
    from signalvault.store import RecordFilter
    from signalvault.trail.audit import record_json

    services = open_services(_settings(config_file))
    try:
        rows = services.store.list_records(
            RecordFilter(key_id=key_id, end_user=end_user, model=model, outcome=outcome), limit
        )
    finally:
        services.store.close()
    records = [record_json(row) for row in rows]
    if as_json:
        for record in records:
            click.echo(orjson.dumps(record).decode())
        return
    click.echo(
        format_table(
            records,
            [
                "time",
                "id",
                "key_id",
                "end_user",
                "api",
                "model_requested",
                "status_code",
                "outcome",
                "total_tokens",
                "latency_ms",
                "stream",
            ],
        )
    )


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


# Lifecycle commands live in their own module; it imports nothing from this one.
from signalvault.cli.accounts import init, users  # noqa: E402
from signalvault.cli.lifecycle import legal_hold, master_key, retention, subject  # noqa: E402
from signalvault.cli.projects import projects  # noqa: E402
from signalvault.cli.providers import providers  # noqa: E402
from signalvault.cli.settings import settings as settings_commands  # noqa: E402

cli.add_command(legal_hold)
cli.add_command(retention)
subject.add_command(subject_export)  # the data-subject group holds export and erase
cli.add_command(subject)
cli.add_command(master_key)
cli.add_command(export)
cli.add_command(audit)
cli.add_command(init)
cli.add_command(users)
cli.add_command(policies)
cli.add_command(providers)
cli.add_command(projects)
cli.add_command(settings_commands)


def main() -> None:
    cli(prog_name="signalvault")


if __name__ == "__main__":  # pragma: no cover
    main()
