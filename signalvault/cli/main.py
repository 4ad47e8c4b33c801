"""The `signalvault` command: the root group with serve, mock-provider, mock-mcp and demo; every
other command group lives in a module of its own and is added here.

Errors a user can cause end as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import click

from signalvault import __version__
from signalvault.cli.accounts import init, users
from signalvault.cli.audit import audit
from signalvault.cli.export import export, subject_export
from signalvault.cli.incidents import incidents
from signalvault.cli.keys import keys
from signalvault.cli.lifecycle import legal_hold, master_key, retention, subject
from signalvault.cli.logs import logs
from signalvault.cli.options import CONFIG_OPTION, ErrorGroup
from signalvault.cli.policies import policies
from signalvault.cli.projects import projects
from signalvault.cli.providers import providers
from signalvault.cli.report import report
from signalvault.cli.samples import sample, verify_sample
from signalvault.cli.settings import settings as settings_commands
from signalvault.cli.traces import traces
from signalvault.config import load_settings


@click.group(cls=ErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
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

    settings = load_settings(config_file)
    run_server(settings, config_file, host=host, port=port, workers=workers)


@cli.command("mock-mcp")
@click.option(
    "--transport",
    type=click.Choice(["http", "stdio"]),
    default="http",
    show_default=True,
    help="Streamable HTTP at /mcp, or standard input and output (a gateway starts it itself).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address (http).")
@click.option("--port", type=int, default=8791, show_default=True, help="Listen port (http).")
@click.option(
    "--calls-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append each call received as a JSON line (how tests see into a stdio server).",
)
def mock_mcp(transport: str, host: str, port: int, calls_file: Path | None) -> None:
    """Run a local MCP server with tools echo, fetch_document and fail (GET /stats counts calls)."""
    from signalvault.mock_provider.mcp_server import MockMcp, run_stdio

    if transport == "stdio":
        run_stdio(calls_file)
        return
    import uvicorn

    click.echo(f"mock MCP server on http://{host}:{port}/mcp (Ctrl-C stops)", err=True)
    app = MockMcp(calls_file).http_app()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


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


cli.add_command(keys)
cli.add_command(logs)
cli.add_command(legal_hold)
cli.add_command(retention)
subject.add_command(subject_export)  # the data-subject group holds export and erase
cli.add_command(subject)
cli.add_command(master_key)
cli.add_command(export)
audit.add_command(sample)
audit.add_command(verify_sample)
cli.add_command(audit)
cli.add_command(incidents)
cli.add_command(report)
cli.add_command(init)
cli.add_command(users)
cli.add_command(policies)
cli.add_command(providers)
cli.add_command(projects)
cli.add_command(settings_commands)
cli.add_command(traces)


def main() -> None:
    cli(prog_name="signalvault")


if __name__ == "__main__":  # pragma: no cover
    main()
