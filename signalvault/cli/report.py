"""`signalvault report soc2`: the evidence report of a period as signed JSON or one
self-contained HTML file; `report verify` checks a JSON report's signature offline."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from signalvault.cli.options import CONFIG_OPTION, opened
from signalvault.config import load_settings
from signalvault.errors import ConfigError


@click.group()
def report() -> None:
    """Evidence reports built from the live trail."""


@report.command("soc2")
@CONFIG_OPTION
@click.option(
    "--from", "since", default=None, help="Period start: ISO-8601 or an age (default 30d)."
)
@click.option("--to", "until", default=None, help="Period end, exclusive (default: now).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "json"]),
    default="html",
    show_default=True,
    help="html for people (one self-contained file), json for tools (signed).",
)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
def soc2(
    config_file: Path | None, since: str | None, until: str | None, fmt: str, out: Path
) -> None:
    """The Trust Services Criteria mapped to evidence of the period: met, gap or not
    applicable, each with its evidence and each gap with its remedy. No content."""
    from signalvault.console import cli_actor
    from signalvault.crypto.envelope import load_master_key
    from signalvault.evidence.report.build import build_report, default_period
    from signalvault.evidence.report.html import render_html
    from signalvault.evidence.report.probe import Period
    from signalvault.trail.export.query import parse_moment
    from signalvault.trail.signing import load_signer

    if not out.parent.is_dir():
        raise ConfigError(f"cannot write {out}: directory {out.parent} does not exist")
    default = default_period()
    start = default.start if since is None else parse_moment(since)
    end = default.end if until is None else parse_moment(until)
    if start >= end:
        raise ConfigError("--from must be earlier than --to")
    settings = load_settings(config_file)
    with opened(settings, seal_first=True) as services:
        signer = load_signer(
            services.store, load_master_key(settings.crypto, settings.store.data_dir)
        )
        built = build_report(
            services.store,
            services.trail,
            settings,
            services.incidents,
            signer,
            Period(start, end),
            cli_actor(),
        )
    data = (
        render_html(built).encode()
        if fmt == "html"
        else orjson.dumps(built, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    )
    try:
        out.write_bytes(data)
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror}") from None
    summary = built["summary"]
    click.echo(
        f"wrote {out}: {summary['met']} met, {summary['gap']} with gaps, "
        f"{summary['not_applicable']} not applicable ({built['period']['from']} to "
        f"{built['period']['to']})"
    )


@report.command("verify")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def verify(file: Path) -> None:
    """Check a JSON report's Ed25519 signature (offline, with the key printed in it)."""
    from signalvault.trail.export import manifest as manifests

    try:
        document = orjson.loads(file.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise click.ClickException(f"cannot read {file} as JSON: {exc}") from None
    if not isinstance(document, dict) or "signature" not in document:
        raise click.ClickException(f"{file} is not a signed SignalVault report")
    check = manifests.check_signature(document)
    click.echo(f"{'ok  ' if check.is_ok else 'FAIL'}  {check.name}: {check.detail}")
    if not check.is_ok:
        raise click.ClickException(f"{file} does not verify")
