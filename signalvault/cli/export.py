"""`signalvault export` (with `export verify`) and `signalvault subject export`: parse the
command line, open the deployment, call the export service, print a one-line summary."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from signalvault.cli.options import CLASS_OPTION, CONFIG_OPTION
from signalvault.config import Settings, load_settings
from signalvault.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from signalvault.store import Store
    from signalvault.trail.export.exporter import Exporter, ExportResult

# Same option as in cli.py (imported from there it would be a circular import).


def _check_target(out: Path | None) -> Path:
    """Refuse an unusable output path before touching the store."""
    if out is None:
        raise click.UsageError("Missing option '--out'.")
    directory = out.parent
    if not directory.is_dir():
        raise ConfigError(f"cannot write {out}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {out}: directory {directory} is not writable")
    if out.is_dir():
        raise ConfigError(f"cannot write {out}: it is a directory")
    return out


class _Counter:
    """Records exported so far, on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        self._is_tty = sys.stderr.isatty()

    def __call__(self, count: int) -> None:
        if self._is_tty:
            click.echo(f"\r{count:,} records…", err=True, nl=False)

    def done(self) -> None:
        if self._is_tty:
            click.echo("\r\033[K", err=True, nl=False)


def _exporter(settings: Settings) -> tuple[Exporter, Store]:
    """(Exporter, store) for this deployment; the caller closes the store."""
    from signalvault.console import cli_actor
    from signalvault.control.services import open_services
    from signalvault.crypto.envelope import load_master_key
    from signalvault.evidence.classes import CLI_ROLE, Classifier
    from signalvault.trail.export.exporter import Exporter
    from signalvault.trail.signing import load_signer

    # No WAL checkpointer thread: once a process has started any thread, glibc takes its locks
    # the multi-threaded way for good, and the fetch takes several per column (GIL, SQLite's
    # mutex): ~5% of an export's CPU (alternated in-process runs, 100k records). An export only
    # reads; the writer's backstop and the gateway's own checkpointer copy the WAL back.
    services = open_services(settings, checkpoint_thread=False)
    try:
        master_key = load_master_key(settings.crypto, settings.store.data_dir)
        signer = load_signer(services.store, master_key)
    except Exception:
        services.store.close()
        raise
    classifier = Classifier(settings.classification)
    exporter = Exporter(
        services.store,
        services.trail,
        signer,
        cli_actor(),
        # The CLI reads content as the owner: classes whose content_roles omit it are withheld.
        readable=lambda row: classifier.may_read_content(CLI_ROLE, row.get("classification")),
    )
    return exporter, services.store


def _run(settings: Settings, job: Callable[[Exporter, _Counter], ExportResult]) -> None:
    exporter, store = _exporter(settings)
    counter = _Counter()
    # An export allocates millions of short-lived, acyclic dicts. Left alone, the collector's
    # full passes rescan every object loaded at start-up again and again (a quarter of the run
    # time in bench/export_speed.py), so those objects are frozen and passes made rarer.
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(50_000, *thresholds[1:])
    try:
        result = job(exporter, counter)
    except OSError as exc:
        raise click.ClickException(f"cannot write the export: {exc.strerror or exc}") from None
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        counter.done()
        store.close()
    summary = f"exported {result.count} records to {result.path} (sha256 {result.sha256})"
    if result.audit_record_id is not None:
        summary += f"; content read recorded as {result.audit_record_id}"
    click.echo(summary)


@click.group(invoke_without_command=True, subcommand_metavar="[verify FILE]")
@CONFIG_OPTION
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "jsonl"]),
    default=None,
    help="File format (required): csv, json (one array) or jsonl (one record a line).",
)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="File to write (required); FILE.manifest.json is written beside it.",
)
@click.option("--since", default=None, help="Records at or after: ISO-8601 time or age (7d).")
@click.option("--until", default=None, help="Records before: ISO-8601 time or age (1d).")
@click.option("--project", default=None, help="Only this project.")
@click.option("--key", "key_id", default=None, help="Only this gateway key id.")
@click.option("--user", "end_user", default=None, help="Only this end user.")
@click.option("--model", default=None, help="Only this model (requested or used).")
@click.option("--outcome", default=None, help="Only this outcome (ok, blocked, rejected, ...).")
@click.option("--rule", default=None, help="Only records in which this guardrail rule fired.")
@click.option("--run", "run_id", default=None, help="Only the records of this agent run.")
@CLASS_OPTION
@click.option(
    "--include-content",
    is_flag=True,
    help="Add decrypted prompts and responses (audited as a content read).",
)
@click.pass_context
def export(
    ctx: click.Context,
    config_file: Path | None,
    fmt: str | None,
    out: Path | None,
    since: str | None,
    until: str | None,
    project: str | None,
    key_id: str | None,
    end_user: str | None,
    model: str | None,
    outcome: str | None,
    rule: str | None,
    classification: str | None,
    run_id: str | None,
    include_content: bool,
) -> None:
    """Export audit records to a file, with a signed manifest beside it; or check an export.

    \b
    signalvault export --format jsonl --since 7d --out trail.jsonl
    signalvault export verify trail.jsonl
    """
    if ctx.invoked_subcommand is not None:
        given = [fmt, out, since, until, project, key_id, end_user, model, outcome, rule]
        given += [classification, run_id]
        if any(value is not None for value in given) or include_content:
            raise click.UsageError(f"export options do not apply to `{ctx.invoked_subcommand}`")
        return
    from signalvault.trail.export.query import ExportFilter, parse_moment

    if fmt is None:
        raise click.UsageError("Missing option '--format' (csv, json or jsonl).")
    target = _check_target(out)
    start = parse_moment(since) if since else None
    end = parse_moment(until) if until else None
    if start is not None and end is not None and start >= end:
        raise ConfigError("--since must be earlier than --until")
    where = ExportFilter(
        since=start,
        until=end,
        project=project,
        key_id=key_id,
        end_user=end_user,
        model=model,
        outcome=outcome,
        rule=rule,
        classification=classification,
        run_id=run_id,
    )
    _run(
        load_settings(config_file),
        lambda exporter, counter: exporter.export(
            target, fmt, where, include_content=include_content, progress=counter
        ),
    )


@export.command("verify")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--manifest",
    "manifest_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The manifest (default: FILE.manifest.json).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also check the signing key is this deployment's (the one this config opens).",
)
def export_verify(file: Path, manifest_file: Path | None, config_file: Path | None) -> None:
    """Check an export against its manifest: signature, SHA-256, record count.

    Exit 0 only if every check that ran passed.
    """
    from signalvault.trail.export import manifest as manifests

    path = manifest_file or manifests.manifest_path(file)
    try:
        manifest = manifests.load(path)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    checks = [manifests.check_signature(manifest), *manifests.check_file(manifest, file)]
    if config_file is not None:
        checks.append(manifests.check_deployment_key(manifest, _deployment_key_id(config_file)))
    for check in checks:
        click.echo(f"{'ok  ' if check.is_ok else 'FAIL'}  {check.name}: {check.detail}")
    if config_file is None:
        click.echo("skip  deployment key: not checked (give --config to compare)")
    if not all(check.is_ok for check in checks):
        failed = ", ".join(c.name for c in checks if not c.is_ok)
        raise click.ClickException(f"{file} does not verify ({failed})")
    click.echo(f"{file}: verified ({manifest['record_count']} records)")


def _deployment_key_id(config_file: Path) -> str | None:
    from signalvault.crypto.envelope import load_master_key
    from signalvault.store import open_store
    from signalvault.trail.export.exporter import deployment_key_id

    settings = load_settings(config_file)
    master_key = load_master_key(settings.crypto, settings.store.data_dir)
    store = open_store(settings.store)
    try:
        store.open()
        return deployment_key_id(store, master_key)
    except StoreError as exc:
        raise click.ClickException(f"cannot check the deployment key: {exc}") from None
    finally:
        store.close()


@click.command("export")
@CONFIG_OPTION
@click.option("--user", "end_user", required=True, help="The end user (as sent by applications).")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="File to write; FILE.manifest.json is written beside it.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "json"]),
    default="jsonl",
    show_default=True,
    help="File format.",
)
def subject_export(config_file: Path | None, end_user: str, out: Path, fmt: str) -> None:
    """Everything about one end user: records with decrypted content, and their data keys.

    Audited as a content read (a subject_export record).
    """
    if not end_user.strip():
        raise click.BadParameter("must not be empty", param_hint="--user")
    target = _check_target(out)
    _run(
        load_settings(config_file),
        lambda exporter, counter: exporter.export_subject(target, fmt, end_user, counter),
    )
