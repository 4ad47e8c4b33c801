"""`signalvault traces`: agent runs (SPEC §7b) and one run's events as a tree (metadata only)."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from signalvault.cli.options import CONFIG_OPTION, ErrorGroup, opened
from signalvault.config import load_settings
from signalvault.console import format_table

EXTRA = ("project", "key_id", "blocked", "flagged", "cursor")  # not in SPEC §7b's shape


@click.group(cls=ErrorGroup)
def traces() -> None:
    """Agent runs: model calls, tool calls and tool results, joined into runs."""


@traces.command("list")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON array of runs.")
@click.option("--session", default=None, help="Only the run of this session.")
@click.option("--user", "end_user", default=None, help="Only runs of this end user.")
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="How many runs."
)
def list_traces(
    config_file: Path | None, as_json: bool, session: str | None, end_user: str | None, limit: int
) -> None:
    """Runs, newest first: their session, trace, end user, time span, calls and outcome."""
    from signalvault.agents.runs import runs_page
    from signalvault.store.run_queries import RunFilter

    with opened(load_settings(config_file)) as services:
        page = runs_page(services.store, RunFilter(session=session, end_user=end_user), limit)
    runs = [{k: v for k, v in run.items() if k not in EXTRA} for run in page.runs]
    if as_json:
        click.echo(orjson.dumps(runs).decode())
        return
    columns = ["id", "started_at", "session", "end_user", "model_calls", "tool_calls", "outcome"]
    click.echo(format_table(runs, columns))


@traces.command("show")
@CONFIG_OPTION
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="The run with its events as JSON.")
def show_trace(config_file: Path | None, run_id: str, as_json: bool) -> None:
    """One run: its events in time order, each under the event it answers."""
    from signalvault.agents.runs import run_detail, run_rows

    with opened(load_settings(config_file)) as services:
        rows = run_rows(services.store, run_id)
    if not rows:
        raise click.ClickException(f"no run {run_id!r}")
    run = run_detail(rows)
    if as_json:
        click.echo(orjson.dumps(run).decode())
        return
    click.echo(
        f"run {run['id']}  session={run['session'] or '-'}  trace={run['trace_id'] or '-'}  "
        f"user={run['end_user'] or '-'}  {run['model_calls']} model call(s), "
        f"{run['tool_calls']} tool call(s)  outcome={run['outcome']}"
    )
    for event in run["events"]:
        what = event["type"]
        if event["tool_name"]:
            what += f" {event['tool_name']}"
        elif event["model"]:
            what += f" {event['model']}"
        fired = sorted({g["rule"] for g in event["guardrails"] if g.get("outcome") != "pass"})
        extras = [f"call={event['call_id']}"] if event["call_id"] else []
        extras += [f"flags={','.join(event['flags'])}"] if event["flags"] else []
        extras += [f"rules={','.join(fired)}"] if fired else []
        mcp = event.get("mcp")
        if mcp:  # the three outcomes of an MCP call, apart
            extras.append(
                f"http={mcp['http_status']} jsonrpc_error={mcp['jsonrpc_error'] or '-'} "
                f"is_error={str(mcp['is_error']).lower() if mcp['is_error'] is not None else '-'}"
            )
        indent = "  " * event["depth"]
        click.echo(
            f"{event['at']}  {indent}{what}  [{event['outcome']}]  {event['id']}  "
            + "  ".join(extras)
        )
