"""`signalvault audit`: verify the tamper evidence of the trail, and seal it now.

`audit verify` exits 0 only if the trail is intact: 3 if it was tampered with, 4 if the only
problem is suspicious unsealed records (docs/cli.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from signalvault.cli.options import CONFIG_OPTION
from signalvault.config import load_settings

EXIT_TAMPERED = 3
EXIT_SUSPICIOUS = 4


@click.group()
def audit() -> None:
    """Tamper evidence of the audit trail: verify it, seal it now."""


@audit.command("verify")
@CONFIG_OPTION
@click.option(
    "--trusted-checkpoint",
    "trusted_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Checkpoint JSON line(s) kept outside the store (checkpoint_file, an export): the "
    "store must still have the same root at each one's size.",
)
@click.option(
    "--export-checkpoints",
    "export_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write every stored signed checkpoint to this file, one JSON line each.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def verify(
    config_file: Path | None, trusted_file: Path | None, export_file: Path | None, as_json: bool
) -> None:
    """Check every sealed record, the Merkle tree and every signed checkpoint."""
    from signalvault.control.services import open_services
    from signalvault.crypto.envelope import load_master_key
    from signalvault.trail.integrity.verify import read_trusted, verify_trail

    settings = load_settings(config_file)
    trusted = read_trusted(trusted_file) if trusted_file is not None else []
    master_key = load_master_key(settings.crypto, settings.store.data_dir)
    # Single-threaded, as `export` is (see cli/export.py): ~6% less CPU; verifying only reads.
    services = open_services(settings, checkpoint_thread=False)
    export = None
    out: Any = None
    try:
        if export_file is not None:
            try:
                out = export_file.open("w")
            except OSError as exc:
                raise click.ClickException(f"cannot write {export_file}: {exc.strerror}") from None

            def export(parsed: Any, row: Any) -> None:
                out.write((parsed.json_line() if parsed else _raw_line(row)) + "\n")

        report = verify_trail(
            services.store,
            master_key,
            settings.audit,
            trusted=trusted,
            export=export,
            progress=_progress if sys.stderr.isatty() and not as_json else None,
        )
        if not report.is_intact:
            _alert(settings, services, report.as_json())
    finally:
        if out is not None:
            out.close()
        services.store.close()
    if sys.stderr.isatty() and not as_json:
        click.echo("", err=True)
    if as_json:
        click.echo(orjson.dumps(report.as_json()).decode())
    else:
        _print_report(report)
    if report.status == "tampered":
        sys.exit(EXIT_TAMPERED)
    if report.status == "suspicious":
        sys.exit(EXIT_SUSPICIOUS)


def _alert(settings: Any, services: Any, report: dict[str, Any]) -> None:
    """A failed verification raises the `verification_failed` alert and incident."""
    from signalvault.evidence.hooks import delivering
    from signalvault.evidence.incidents import raise_alert, verification_details

    with delivering(settings, services.incidents) as book:
        raise_alert(book, "verification_failed", verification_details(report))


def _progress(done: int, total: int) -> None:
    click.echo(f"\rverifying sealed records: {done}/{total}", nl=False, err=True)


def _raw_line(row: Any) -> str:
    import base64

    return orjson.dumps(
        {
            "tree_size": row.tree_size,
            "body": row.body,
            "signature": base64.b64encode(row.signature).decode(),
        }
    ).decode()


def _print_report(report: Any) -> None:
    summary = (
        f"{report.records_checked} sealed records ({report.tombstones} tombstones) under "
        f"{report.checkpoints_checked} checkpoints, tree size {report.tree_size}"
    )
    if report.root:
        summary += f", root {report.root[:16]}…"
    summary += f"; {report.unsealed} not yet sealed"
    if report.sealed_during_run:
        summary += f" ({report.sealed_during_run} sealed during this run, not checked)"
    if report.trusted_checked:
        summary += f"; {report.trusted_checked} trusted checkpoint(s) compared"
    if report.is_intact:
        click.echo(f"intact: {summary}")
        return
    first = report.first()
    click.echo(f"{report.status.upper()}: {first.message if first else 'see problems'}")
    if first is not None and first.record_id and first.checkpoint is not None:
        click.echo(f"  sealed under the checkpoint at tree size {first.checkpoint}")
    checkpoint = report.first("checkpoint", "trusted")
    if checkpoint is not None and checkpoint is not first:
        click.echo(f"  first checkpoint no longer matching: {checkpoint.message}")
    problems = ", ".join(f"{kind}={count}" for kind, count in sorted(report.counts.items()))
    click.echo(f"  problems: {problems}")
    for finding in report.findings[1:10]:
        click.echo(f"  - {finding.message}")
    click.echo(f"  {summary}")


@audit.command("seal")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def seal(config_file: Path | None, as_json: bool) -> None:
    """Seal finished records now under a signed checkpoint (serve also does it periodically)."""
    from signalvault.control.services import open_services
    from signalvault.trail.integrity.sealer import seal_now

    settings = load_settings(config_file)
    services = open_services(settings)
    try:
        result = seal_now(services)
    finally:
        services.sealer.close()
        services.store.close()
    if as_json:
        click.echo(
            orjson.dumps(
                {
                    "is_leader": result.is_leader,
                    "sealed": result.sealed,
                    "tree_size": result.tree_size,
                    "checkpoints": len(result.checkpoints),
                }
            ).decode()
        )
    elif not result.is_leader:
        click.echo("another gateway process holds the sealer lease and seals for it; nothing done")
    else:
        click.echo(
            f"sealed {result.sealed} records under {len(result.checkpoints)} new checkpoint(s); "
            f"tree size {result.tree_size}"
        )
