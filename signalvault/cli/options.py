"""Options every CLI module shares (kept apart so command modules need not import cli.py)."""

from __future__ import annotations

from pathlib import Path

import click

CONFIG_OPTION = click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="TOML config file (default: ./signalvault.toml if present, else built-in defaults).",
)
