"""CLI commands for guardrail policy change control: list, show (with the diff), propose,
approve, reject, roll back. With two-person review on, the changing commands act as an account
(`--as EMAIL`, its password checked and throttled like a login), so one person counts once
whether they use the admin API or the CLI; with review off they may act as the OS user."""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson

from signalvault.cli.options import CONFIG_OPTION, opened
from signalvault.config import Settings, load_settings
from signalvault.console import cli_actor, format_table, iso
from signalvault.control.policies import PolicyService, version_json
from signalvault.errors import ConfigError, Forbidden

if TYPE_CHECKING:
    from signalvault.control.services import Services

REASON_OPTION = click.option("--reason", default=None, help="Why (a ticket reference).")
F = TypeVar("F", bound=Callable[..., Any])


def identity_options(command: F) -> F:
    """`--as EMAIL` and `--password-stdin` for the commands that change policies."""
    command = click.option(
        "--password-stdin",
        is_flag=True,
        help="Read the --as account's password from the first line of standard input.",
    )(command)
    return click.option(
        "--as",
        "as_email",
        default=None,
        metavar="EMAIL",
        help="Act as this account (required with two-person review on); its password is "
        "asked for, hidden, unless --password-stdin.",
    )(command)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a changing command acts as: `--as EMAIL` and how to get its password."""

    email: str | None
    password_stdin: bool


@dataclass(frozen=True, slots=True)
class _Session:
    policies: PolicyService
    services: Services
    settings: Settings


@contextmanager
def _service(config_file: Path | None) -> Iterator[PolicyService]:
    with _open(config_file) as opened:
        yield opened.policies


@contextmanager
def _open(config_file: Path | None) -> Iterator[_Session]:
    settings = load_settings(config_file)
    with opened(settings) as services:
        review = settings.guardrails.two_person_review
        yield _Session(
            PolicyService(services.store, services.trail, review=review), services, settings
        )


def _password(identity: Identity) -> str:
    assert identity.email is not None
    if identity.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ConfigError("--password-stdin: standard input held no password")
        return password
    return str(click.prompt(f"Password for {identity.email}", hide_input=True))


def acting_as(session: _Session, identity: Identity, permission: str) -> str:
    """The actor a changing command records: `account:EMAIL` after checking the password and
    that the account's global role holds `permission` (the admin API's table); the OS user
    (`cli:<user>`) only with review off and no `--as`.

    Raises:
        ConfigError: review on and no `--as`. AuthError, RateLimited: as a login.
        Forbidden: the role does not allow it, or the password is a one-time one.
    """
    if identity.email is None:
        if identity.password_stdin:
            raise click.UsageError("--password-stdin needs --as EMAIL")
        if session.policies.review:
            raise ConfigError(
                "two-person review is on: name your account with --as EMAIL (the CLI then "
                "acts as that account, as the admin API does)"
            )
        return cli_actor()
    from signalvault.control.api.authz import role_allows
    from signalvault.control.services import open_accounts

    password = _password(identity)
    # The same service as the admin API's, so run-time login-lock settings apply here too.
    accounts = open_accounts(session.services, session.settings)
    who = accounts.authenticate_password(identity.email, password, via="cli")
    if who.must_change_password:
        raise Forbidden(
            f"{who.email} still has its one-time password; change it first "
            f"(`signalvault users password {who.email}`, or POST /api/auth/password)",
            code="password_change_required",
        )
    if not role_allows(who, permission, None):
        raise Forbidden(
            f"the global role of {who.email} does not allow {permission}", code="forbidden"
        )
    return who.actor


def read_rules_file(path: Path) -> list[Any]:
    """Rules from a JSON file (a list, or {"rules": [...]}) or a TOML file (`[[rules]]` or
    `[[guardrails.rules]]` tables).

    Raises:
        ConfigError: unreadable, malformed, or no rules list in it.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() == ".json":
            data: Any = orjson.loads(raw)
        else:
            data = tomllib.loads(raw.decode())
    except (orjson.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{path} is not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}"
        ) from None
    if isinstance(data, dict):
        nested = data.get("guardrails")
        data = data.get("rules", nested.get("rules") if isinstance(nested, dict) else None)
    if not isinstance(data, list):
        raise ConfigError(f"{path} holds no list of rules (`rules` or `guardrails.rules`)")
    return data


@click.group("policies")
def policies() -> None:
    """Guardrail policy versions and their two-person review."""


@policies.command("list")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, rules included.")
def policies_list(config_file: Path | None, as_json: bool) -> None:
    """Every policy version with its proposer, approver, status and times."""
    with _service(config_file) as service:
        versions = service.versions()
    if as_json:
        for version in versions:
            click.echo(orjson.dumps(version_json(version)).decode())
        return
    rows = [
        {
            "version": v.version,
            "status": v.status,
            "source": v.source,
            "base": v.base_version,
            "proposed_by": v.created_by,
            "proposed_at": iso(v.created_at),
            "decided_by": v.decided_by,
            "decided_at": iso(v.decided_at),
            "reason": v.reason,
        }
        for v in versions
    ]
    click.echo(format_table(rows, list(rows[0]) if rows else []))


@policies.command("show")
@CONFIG_OPTION
@click.argument("version", type=int)
@click.option("--diff", "with_diff", is_flag=True, help="The change against its base version.")
def policies_show(config_file: Path | None, version: int, with_diff: bool) -> None:
    """One version as JSON, or its diff against the version active when it was proposed."""
    with _service(config_file) as service:
        if not with_diff:
            click.echo(orjson.dumps(version_json(service.get(version)), option=orjson.OPT_INDENT_2))
            return
        diff = service.diff(version)
    for change in diff.changes:
        fields = f" ({', '.join(change.fields)})" if change.fields else ""
        click.echo(f"{change.change} {change.name}{fields}")
    if diff.reordered:
        click.echo("rules reordered")
    click.echo(diff.text, nl=False)


@policies.command("propose")
@CONFIG_OPTION
@click.option(
    "--file",
    "rules_file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Rules as TOML ([[rules]]) or JSON (a list).",
)
@REASON_OPTION
@identity_options
def policies_propose(
    config_file: Path | None,
    rules_file: Path,
    reason: str | None,
    as_email: str | None,
    password_stdin: bool,
) -> None:
    """Propose a new policy version (active at once only with review off)."""
    raw = read_rules_file(rules_file)
    with _open(config_file) as session:
        actor = acting_as(session, Identity(as_email, password_stdin), "policies.propose")
        service = session.policies
        # Before any gateway ran, the policy it will start with is put in force first, so the
        # proposal is reviewed (and diffed) against it instead of going stale at that start.
        service.ensure_active(session.settings.guardrails.rules)
        proposed = service.propose(raw, actor, reason, source="cli")
        diff = service.diff(proposed.version)
    summary = diff.summary()
    click.echo(
        f"Policy version {proposed.version} is {proposed.status} "
        f"(base {proposed.base_version}): added {len(summary['added'])}, "
        f"removed {len(summary['removed'])}, changed {len(summary['changed'])} rule(s)."
    )


@policies.command("approve")
@CONFIG_OPTION
@click.argument("version", type=int)
@identity_options
def policies_approve(
    config_file: Path | None, version: int, as_email: str | None, password_stdin: bool
) -> None:
    """Approve a proposal (not your own): it becomes the active policy."""
    with _open(config_file) as session:
        actor = acting_as(session, Identity(as_email, password_stdin), "policies.approve")
        approved = session.policies.approve(version, actor)
    click.echo(f"Policy version {approved.version} is active.")


@policies.command("reject")
@CONFIG_OPTION
@click.argument("version", type=int)
@REASON_OPTION
@identity_options
def policies_reject(
    config_file: Path | None,
    version: int,
    reason: str | None,
    as_email: str | None,
    password_stdin: bool,
) -> None:
    """Reject a proposal."""
    with _open(config_file) as session:
        actor = acting_as(session, Identity(as_email, password_stdin), "policies.approve")
        rejected = session.policies.reject(version, actor, reason)
    click.echo(f"Policy version {rejected.version} is rejected.")


@policies.command("rollback")
@CONFIG_OPTION
@click.argument("version", type=int)
@REASON_OPTION
@identity_options
def policies_rollback(
    config_file: Path | None,
    version: int,
    reason: str | None,
    as_email: str | None,
    password_stdin: bool,
) -> None:
    """Propose an earlier version's rules again (reviewed like any change)."""
    with _open(config_file) as session:
        actor = acting_as(session, Identity(as_email, password_stdin), "policies.propose")
        proposed = session.policies.rollback(version, actor, reason)
    click.echo(
        f"Policy version {proposed.version} (the rules of version {version}) is {proposed.status}."
    )
