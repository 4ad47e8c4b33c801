"""`signalvault audit sample` and `audit verify-sample`: an auditor's reproducible sample of
sealed records with inclusion proofs, and its offline check (SPEC §7c)."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import click
import orjson

from signalvault.cli.options import CONFIG_OPTION, opened
from signalvault.config import load_settings
from signalvault.errors import ConfigError


@click.command("sample")
@CONFIG_OPTION
@click.option("--n", "n", type=click.IntRange(1, 10_000), required=True, help="Records to draw.")
@click.option("--from", "since", default=None, help="Records at or after: ISO-8601 or an age.")
@click.option("--to", "until", default=None, help="Records before: ISO-8601 or an age.")
@click.option("--seed", type=int, default=None, help="Seed of the draw (default: random, printed).")
@click.option("--kind", default=None, help="Only records of this kind (e.g. interaction).")
@click.option(
    "--include-content",
    is_flag=True,
    help="Add decrypted content of the classes the owner may read (audited).",
)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
def sample(
    config_file: Path | None,
    n: int,
    since: str | None,
    until: str | None,
    seed: int | None,
    kind: str | None,
    include_content: bool,
    out: Path,
) -> None:
    """Draw a reproducible random sample of sealed records, each with its Merkle inclusion proof
    against the newest signed checkpoint; the file verifies offline (`audit verify-sample`)."""
    from signalvault.console import cli_actor
    from signalvault.crypto.envelope import load_master_key
    from signalvault.evidence.classes import CLI_ROLE, Classifier
    from signalvault.evidence.sample import SampleRequest, draw_sample
    from signalvault.trail.export.query import parse_moment
    from signalvault.trail.signing import load_signer

    if not out.parent.is_dir():
        raise ConfigError(f"cannot write {out}: directory {out.parent} does not exist")
    request = SampleRequest(
        n=n,
        since=None if since is None else parse_moment(since),
        until=None if until is None else parse_moment(until),
        seed=seed,
        kind=kind,
        include_content=include_content,
    )
    settings = load_settings(config_file)
    classifier = Classifier(settings.classification)
    with opened(settings, seal_first=True) as services:
        signer = load_signer(
            services.store, load_master_key(settings.crypto, settings.store.data_dir)
        )
        document = draw_sample(
            services.store,
            services.trail,
            signer,
            request,
            cli_actor(),
            lambda row: classifier.may_read_content(CLI_ROLE, row.get("classification")),
        )
    try:
        out.write_bytes(
            orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
        )
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror}") from None
    params, population = document["parameters"], document["population"]
    click.echo(
        f"sampled {len(document['records'])} of {population['eligible']} records (seed "
        f"{params['seed']}) against the checkpoint at tree size "
        f"{document['checkpoint']['tree_size']}; wrote {out}; recorded as "
        f"{document['audit_record_id']}"
    )


@click.command("verify-sample")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A checkpoint JSON line obtained independently (checkpoint_file, webhook): the "
    "sample's proofs must be against it.",
)
@click.option("--public-key", default=None, help="The deployment's public key (base64) to expect.")
def verify_sample(file: Path, checkpoint_file: Path | None, public_key: str | None) -> None:
    """Check a sample offline: its signature, the checkpoint's signature, and every record's
    fields and inclusion proof. Exit 0 only if all pass."""
    from signalvault.evidence.sample_check import check_sample, load_sample
    from signalvault.trail.integrity.verify import read_trusted

    try:
        document = load_sample(file)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    trusted = read_trusted(checkpoint_file)[-1] if checkpoint_file is not None else None
    key = None
    if public_key is not None:
        try:
            key = base64.b64decode(public_key, validate=True)
        except binascii.Error:
            raise click.BadParameter("not base64", param_hint="--public-key") from None
    checks = check_sample(document, trusted, key)
    for check in checks:
        click.echo(f"{'ok  ' if check.is_ok else 'FAIL'}  {check.name}: {check.detail}")
    failed = [c.name for c in checks if not c.is_ok]
    if failed:
        raise click.ClickException(f"{file} does not verify ({', '.join(failed)})")
    click.echo(f"{file}: verified ({len(document['records'])} records)")
