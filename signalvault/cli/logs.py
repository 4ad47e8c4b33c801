"""`signalvault logs`: recent audit records, metadata only (never content)."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from signalvault.cli.options import CLASS_OPTION, CONFIG_OPTION, opened
from signalvault.config import load_settings
from signalvault.console import format_table


@click.command()
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
@CLASS_OPTION
@click.option("--kind", default=None, help="Only records of this kind (interaction, an event).")
def logs(
    config_file: Path | None,
    limit: int,
    as_json: bool,
    key_id: str | None,
    end_user: str | None,
    model: str | None,
    outcome: str | None,
    classification: str | None,
    kind: str | None,
) -> None:
    """Recent audit records, newest first (metadata only, never content)."""
    from signalvault.store import RecordFilter
    from signalvault.trail.record_json import record_json

    with opened(load_settings(config_file)) as services:
        rows = services.store.list_records(
            RecordFilter(
                key_id=key_id,
                end_user=end_user,
                model=model,
                outcome=outcome,
                classification=classification,
                kinds=None if kind is None else (kind,),
            ),
            limit,
        )
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
                "classification",
                "total_tokens",
                "latency_ms",
                "stream",
            ],
        )
    )
