"""What every CLI module shares: the `--config` option, the error-to-one-line command group, and
opening a deployment's services for one command (kept apart so command modules need not import
cli/main.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from signalvault.config import CLASSES, Settings
from signalvault.errors import SignalVaultError

if TYPE_CHECKING:
    from signalvault.control.services import Services

CONFIG_OPTION = click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="TOML config file (default: ./signalvault.toml if present, else built-in defaults).",
)

CLASS_OPTION = click.option(
    "--class",
    "classification",
    type=click.Choice(CLASSES),
    default=None,
    help="Only records of this data class.",
)


class ErrorGroup(click.Group):
    """Turns SignalVaultError into a one-line error (exit 1) instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SignalVaultError as exc:
            raise click.ClickException(str(exc)) from None


@contextmanager
def opened(settings: Settings, *, seal_first: bool = False) -> Iterator[Services]:
    """The deployment's services for one command, closed after it. With `seal_first`, finished
    records are sealed before a command removes any, so what it tombstones is already committed
    to the tamper-evidence tree."""
    from signalvault.control.services import open_services  # the gateway's imports only when needed

    services = open_services(settings)
    try:
        if seal_first:
            from signalvault.trail.integrity.sealer import seal_now

            seal_now(services)
        yield services
    finally:
        services.sealer.close()  # lets queued checkpoint copies go out
        services.store.close()
