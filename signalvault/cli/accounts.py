"""CLI commands for people's accounts: `init` (config file and first owner) and `users
create/list/disable/reset-password/tokens/revoke-token`. Each parses its arguments and calls
the account service."""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from signalvault.cli.options import CONFIG_OPTION, opened
from signalvault.config import Settings, config_path, load_settings
from signalvault.console import cli_actor, format_table, iso
from signalvault.control.accounts.principal import ROLES
from signalvault.errors import ConfigError

if TYPE_CHECKING:
    from signalvault.control.accounts.service import AccountService
    from signalvault.store.account_queries import Account, ApiToken

PASSWORD_STDIN = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of generating one.",
)

CONFIG_TEMPLATE = """\
# SignalVault configuration, written by `signalvault init`. Every setting is described in
# docs/configuration.md; each can also be set in the environment as SIGNALVAULT_<SECTION>_<NAME>.

# Where the embedded store and the generated master key live (mode 0700):
# [store]
# data_dir = ".signalvault"

# `serve` needs at least one provider (`signalvault demo` wires a mock one by itself):
# [[providers]]
# name = "openai"
# kind = "openai"                  # openai | anthropic | openai-compatible
# base_url = "https://api.openai.com/v1"
# api_key_env = "OPENAI_API_KEY"   # the key stays in the environment, not in this file
# models = ["gpt-4o*", "o3*"]

# Dashboard and admin-API sessions:
# [accounts]
# session_idle_minutes = 30
# session_max_hours = 12
"""


@contextmanager
def _accounts(settings: Settings) -> Iterator[AccountService]:
    from signalvault.control.services import open_accounts  # only when needed

    with opened(settings) as services:
        yield open_accounts(services, settings)


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise ConfigError("--password-stdin: standard input held no password")
    return password


def _check_input(settings: Settings, email: str, password: str | None) -> None:
    """Validate before anything is stored: bad input must create no data directory."""
    from signalvault.control.accounts.checks import check_email
    from signalvault.control.accounts.passwords import Passwords

    address = check_email(email)
    if password is not None:
        Passwords.from_settings(settings.accounts).check_policy(password, address)


def _stage_config(path: Path) -> Path:
    """The config template in a private file beside `path` (mode 0600: the config may later hold
    secrets); `_place_config` puts it in place once the owner exists."""
    staged = path.with_name(f".{path.name}.{secrets.token_hex(6)}.new")
    try:
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot create config file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(CONFIG_TEMPLATE)
    return staged


def _place_config(staged: Path, path: Path) -> bool:
    """Link the staged file to `path`, never over an existing one (another `init` running at
    the same time may have written it); True if this call created it."""
    try:
        os.link(staged, path)
    except FileExistsError:
        return False
    except OSError as exc:
        raise ConfigError(f"cannot create config file {path}: {exc.strerror}") from None
    return True


@click.command()
@CONFIG_OPTION
@click.option("--email", default=None, help="The first owner's email (asked for if not given).")
@PASSWORD_STDIN
def init(config_file: Path | None, email: str | None, password_stdin: bool) -> None:
    """Create the data directory, master key, a config file and the first owner account."""
    if email is None:
        if password_stdin:
            raise click.UsageError("--password-stdin needs --email")
        email = click.prompt("Owner email")
    assert email is not None
    password = _read_password() if password_stdin else None
    path = config_path(config_file)
    # A new config file appears only once the owner exists, so a refused init leaves none
    # behind and never removes one that a concurrent init has just written.
    staged = None if path.exists() else _stage_config(path)
    try:
        settings = load_settings(staged or path)
        _check_input(settings, email, password)
        with _accounts(settings) as accounts:
            # One transaction with a unique marker: of two inits racing on one store, one
            # creates the owner and the other is refused (no check-then-insert).
            account, generated = accounts.create_first_owner(email, cli_actor(), password)
        created = staged is not None and _place_config(staged, path)
    finally:
        if staged is not None:
            staged.unlink(missing_ok=True)
    click.echo(f"{'Wrote' if created else 'Kept existing'} config file {path}")
    click.echo(f"Data directory: {settings.store.data_dir}")
    _created(account, generated)


def _created(account: Account, generated: str | None) -> None:
    click.echo(f"Created account {account.id} ({account.email}, {_roles(account)}).")
    if generated is not None:
        click.echo("Its one-time password, shown only now (change it after the first login):")
        click.echo(generated)


@click.group()
def users() -> None:
    """Create, list, disable dashboard and admin-API accounts; reset passwords; tokens."""


@users.command("create")
@CONFIG_OPTION
@click.option("--email", required=True, help="The account's email (its login name).")
@click.option("--role", required=True, type=click.Choice(ROLES), help="Role (SPEC §5).")
@click.option("--project", default=None, help="Give the role in this project only.")
@PASSWORD_STDIN
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def users_create(
    config_file: Path | None,
    email: str,
    role: str,
    project: str | None,
    password_stdin: bool,
    as_json: bool,
) -> None:
    """Create an account; prints a one-time password unless one is read from stdin."""
    password = _read_password() if password_stdin else None
    settings = load_settings(config_file)
    _check_input(settings, email, password)
    with _accounts(settings) as accounts:
        account, generated = accounts.create_account(email, {project: role}, cli_actor(), password)
    if as_json:
        click.echo(orjson.dumps({**_account_json(account), "password": generated}).decode())
        return
    _created(account, generated)


@users.command("list")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def users_list(config_file: Path | None, as_json: bool) -> None:
    """List accounts with their roles and status (never password hashes)."""
    with _accounts(load_settings(config_file)) as accounts:
        rows = [_account_json(a) for a in accounts.list_accounts()]
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        return
    for row in rows:
        row["roles"] = ",".join(f"{p}={r}" for p, r in row["roles"].items())
    click.echo(format_table(rows, ["id", "email", "roles", "status", "created_at", "created_by"]))


@users.command("disable")
@CONFIG_OPTION
@click.argument("account")
def users_disable(config_file: Path | None, account: str) -> None:
    """Disable an account (by id or email); its sessions and API tokens end at once."""
    with _accounts(load_settings(config_file)) as accounts:
        done = accounts.disable_account(accounts.get_account(account).id, cli_actor())
    click.echo(
        f"Disabled {done.account.id} ({done.account.email}): {done.sessions_ended} session(s) "
        f"ended, {done.tokens_revoked} API token(s) revoked."
    )


def _roles(account: Account) -> str:
    return ", ".join(f"{role} in {p}" if p != "*" else role for p, role in account.roles.items())


def _account_json(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "email": account.email,
        "roles": account.roles,
        "status": "disabled" if account.is_disabled else "active",
        "created_at": iso(account.created_at),
        "created_by": account.created_by,
        "disabled_at": iso(account.disabled_at),
        "disabled_by": account.disabled_by,
        "password_changed_at": iso(account.password_changed_at),
    }


@users.command("reset-password")
@CONFIG_OPTION
@click.argument("account")
def users_reset_password(config_file: Path | None, account: str) -> None:
    """Give an account (id or email) a new one-time password, printed once. Its sessions end;
    until its holder chooses a password, the account can do nothing else."""
    with _accounts(load_settings(config_file)) as accounts:
        found = accounts.get_account(account)
        password = accounts.reset_password(found.id, cli_actor())
    click.echo(f"New one-time password for {found.id} ({found.email}), shown only now:")
    click.echo(password)


@users.command("password")
@CONFIG_OPTION
@click.argument("email")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the current password, then the new one, a line each from standard input.",
)
def users_password(config_file: Path | None, email: str, password_stdin: bool) -> None:
    """Change an account's password by proving the current one (how the holder of a one-time
    password chooses their own). Every session of the account ends; its API tokens stay."""
    if password_stdin:
        current, new = _read_password(), _read_password()
    else:
        current = click.prompt("Current password", hide_input=True)
        new = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    with _accounts(load_settings(config_file)) as accounts:
        found = accounts.get_account(email)
        ended = accounts.change_password(found.id, current, new, f"account:{found.email}")
    click.echo(f"Password changed for {found.email}; {ended} session(s) ended.")


@users.command("tokens")
@CONFIG_OPTION
@click.argument("account")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def users_tokens(config_file: Path | None, account: str, as_json: bool) -> None:
    """List an account's personal API tokens (id or email): metadata only, never secrets."""
    with _accounts(load_settings(config_file)) as accounts:
        rows = [token_json(t) for t in accounts.list_tokens(accounts.get_account(account).id)]
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        return
    columns = ["id", "name", "prefix", "status", "created_at", "expires_at", "last_used_at"]
    click.echo(format_table(rows, columns))


@users.command("revoke-token")
@CONFIG_OPTION
@click.argument("token_id")
def users_revoke_token(config_file: Path | None, token_id: str) -> None:
    """Revoke a personal API token by id; it is refused from the next request on."""
    with _accounts(load_settings(config_file)) as accounts:
        token = accounts.revoke_token(token_id, cli_actor())
    click.echo(f"Revoked API token {token.id} ({token.name}, {token.prefix}...).")


def token_json(token: ApiToken) -> dict[str, Any]:
    """A token's metadata for `users tokens`: never its secret or hash."""
    return {
        "id": token.id,
        "account_id": token.account_id,
        "name": token.name,
        "prefix": token.prefix,
        "status": token.status_at(time.time()),
        "created_at": iso(token.created_at),
        "expires_at": iso(token.expires_at),
        "revoked_at": iso(token.revoked_at),
        "last_used_at": iso(token.last_used_at),
    }
