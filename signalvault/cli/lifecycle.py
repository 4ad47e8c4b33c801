"""CLI commands for the record lifecycle: legal holds, retention runs, data-subject erasure and
master-key rotation. Each parses its arguments and calls one service function."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
import orjson

from signalvault.cli.options import CONFIG_OPTION, opened
from signalvault.config import load_settings
from signalvault.console import cli_actor, format_table

if TYPE_CHECKING:
    pass


def _progress(label: str) -> Callable[[int, int], None] | None:
    """A one-line counter on stderr when it is a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        suffix = f"/{total}" if total else ""
        click.echo(f"\r{label}: {done}{suffix}", nl=False, err=True)

    return show


def _end_progress(progress: object) -> None:
    if progress is not None:
        click.echo("", err=True)


@click.group("legal-hold")
def legal_hold() -> None:
    """Place, list and release legal holds (they suspend retention and erasure)."""


@legal_hold.command("add")
@CONFIG_OPTION
@click.option(
    "--scope",
    type=click.Choice(["project", "key", "user", "record"]),
    required=True,
    help="What the hold covers.",
)
@click.option("--value", required=True, help="Project name, key id, end user id or record id.")
@click.option("--reason", default=None, help="Why (a case or ticket reference).")
def legal_hold_add(config_file: Path | None, scope: str, value: str, reason: str | None) -> None:
    """Place a hold: covered records are kept by retention and cannot be erased."""
    from signalvault.trail.legal_holds import add_hold

    with opened(load_settings(config_file)) as services:
        hold = add_hold(services.store, services.trail, scope, value, reason, cli_actor())
    click.echo(f"Placed legal hold {hold.id} on {scope} {value!r}.")


@legal_hold.command("list")
@CONFIG_OPTION
@click.option("--all", "include_released", is_flag=True, help="Include released holds.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def legal_hold_list(config_file: Path | None, include_released: bool, as_json: bool) -> None:
    """List active holds (and released ones with --all)."""
    from signalvault.trail.legal_holds import hold_json

    with opened(load_settings(config_file)) as services:
        holds = services.store.list_holds(include_released=include_released)
    rows = [hold_json(hold) for hold in holds]
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        return
    click.echo(
        format_table(rows, ["id", "scope", "value", "status", "created_at", "created_by", "reason"])
    )


@legal_hold.command("release")
@CONFIG_OPTION
@click.argument("hold_id")
def legal_hold_release(config_file: Path | None, hold_id: str) -> None:
    """Release a hold; retention and erasure apply again to what it covered."""
    from signalvault.trail.legal_holds import release_hold

    with opened(load_settings(config_file)) as services:
        hold = release_hold(services.store, services.trail, hold_id, cli_actor())
    click.echo(f"Released legal hold {hold.id} ({hold.scope} {hold.value!r}).")


@click.group()
def retention() -> None:
    """Apply retention (it also runs on a schedule inside `serve`)."""


@retention.command("run")
@CONFIG_OPTION
@click.option("--dry-run", is_flag=True, help="Count what would be tombstoned; change nothing.")
@click.option(
    "--archive-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Append expired records here (JSON Lines, content still encrypted) first.",
)
def retention_run(config_file: Path | None, dry_run: bool, archive_dir: Path | None) -> None:
    """Tombstone every expired record not under a legal hold, now."""
    from signalvault.trail.retention import run_retention

    settings = load_settings(config_file)
    progress = None if dry_run else _progress("tombstoned")
    with opened(settings, seal_first=not dry_run) as services:
        try:
            report = run_retention(
                services.store,
                services.trail,
                settings.retention,
                actor=cli_actor(),
                dry_run=dry_run,
                archive_dir=archive_dir,
                progress=progress,
            )
        finally:
            _end_progress(progress)
    click.echo(report.summary())


@click.group()
def subject() -> None:
    """Data-subject requests about one end user."""


@subject.command("erase")
@CONFIG_OPTION
@click.option("--user", "end_user", required=True, help="The end user id to erase.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def subject_erase(config_file: Path | None, end_user: str, yes: bool) -> None:
    """Destroy the user's data keys, tombstone their records and record an erasure receipt."""
    from signalvault.trail.erasure import erase_subject

    settings = load_settings(config_file)
    if not yes:
        click.confirm(
            "Erase every record and data key of this end user? This cannot be undone.",
            abort=True,
            err=True,
        )
    with opened(settings, seal_first=True) as services:
        receipt = erase_subject(services.store, services.trail, end_user, cli_actor())
    click.echo(
        f"Erased subject {receipt.subject_hash[:16]}: {receipt.records} record(s) tombstoned, "
        f"{receipt.keys} data key(s) destroyed; receipt {receipt.record_id}."
    )
    if not receipt.is_space_reclaimed:
        click.echo(
            "Warning: other processes held old database pages; the write-ahead log still holds "
            "earlier page images until their next checkpoint.",
            err=True,
        )


@click.group("master-key")
def master_key() -> None:
    """Rotate the master key."""


@master_key.command("rotate")
@CONFIG_OPTION
@click.option(
    "--new-key-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Use this key (64 hex digits) instead of generating one; required when the master key "
    "comes from the environment.",
)
@click.option(
    "--finish",
    is_flag=True,
    help="Re-wrap stragglers, then destroy the previous key (once nothing is wrapped by it).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=500,
    show_default=True,
    help="Keys re-wrapped per query.",
)
def master_key_rotate(
    config_file: Path | None, new_key_file: Path | None, finish: bool, batch_size: int
) -> None:
    """New master key; re-wraps data keys and secrets without re-encrypting records."""
    from signalvault.crypto.master_key import open_key_source, read_key_file
    from signalvault.trail import rotation

    settings = load_settings(config_file)
    if finish and new_key_file is not None:
        raise click.UsageError("--finish takes no --new-key-file")
    new_key = read_key_file(new_key_file) if new_key_file is not None else None
    source = open_key_source(settings)
    progress = _progress("re-wrapped")
    counter = None if progress is None else (lambda done: progress(done, 0))
    with opened(settings) as services:
        try:
            if finish:
                report = rotation.finish(
                    services.store,
                    services.trail,
                    source,
                    cli_actor(),
                    batch=batch_size,
                    progress=counter,
                )
            else:
                report = rotation.rotate(
                    services.store,
                    services.trail,
                    source,
                    cli_actor(),
                    new_master_key=new_key,
                    batch=batch_size,
                    progress=counter,
                )
        finally:
            _end_progress(progress)
    old = ", ".join(report.old_key_ids) or "none"
    line = f"master key {old} -> {report.new_key_id}: re-wrapped {report.rewrapped} key(s)"
    if finish:
        click.echo(f"{line}; {report.retired}")
    else:
        click.echo(
            f"{line}. Gateways keep serving; once they run with the new key, run "
            "`signalvault master-key rotate --finish`."
        )
    for key_id, count in report.unreadable.items():
        click.echo(
            f"Warning: {count} key(s) wrapped by master key {key_id}, which is not held, "
            "were left as they are.",
            err=True,
        )
