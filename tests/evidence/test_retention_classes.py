"""Retention per data class (a class limit is a maximum, whatever the project keeps), and the
CLI's content reads honour the classes the owner may read."""

from __future__ import annotations

import time

import orjson
import pytest
from click.testing import CliRunner

from signalvault.cli.main import cli
from signalvault.config import RetentionSettings
from signalvault.trail.retention import run_retention
from tests.conftest import records, running_gateway
from tests.evidence.helpers import AWS_KEY, EMAIL, PATHS, auth, body

pytestmark = pytest.mark.anyio
DAY = 86_400.0


async def test_a_class_limit_expires_its_records_while_others_are_kept(settings, mock):
    async with running_gateway(settings) as (app, client, key):
        await client.post(PATHS["chat"], json=body("chat", "hello"), headers=auth(key))
        await client.post(PATHS["chat"], json=body("chat", f"mail {EMAIL}"), headers=auth(key))
        await client.post(PATHS["chat"], json=body("chat", f"k {AWS_KEY}"), headers=auth(key))
        assert app.services is not None
        app.services.store.flush()
        limits = RetentionSettings(days=0, projects={"default": 365}, classes={"restricted": 30})
        later = time.time() + 31 * DAY
        report = run_retention(
            app.services.store, app.services.trail, limits, actor="test", now=later
        )
        rows = [r for r in records(app) if r["kind"] == "interaction"]
        still = run_retention(
            app.services.store,
            app.services.trail,
            RetentionSettings(classes={"confidential": 90}),
            actor="test",
            now=later,
            dry_run=True,
        )
    by_class = {r["classification"]: r for r in rows if r["classification"]}
    gone = [r for r in rows if r["tombstoned_at"] is not None]
    assert report.tombstoned == 1 and len(gone) == 1
    assert gone[0]["classification"] is None  # a tombstone keeps only what proves the deletion
    assert by_class["internal"]["tombstoned_at"] is None
    assert by_class["confidential"]["tombstoned_at"] is None
    assert still.tombstoned == 0  # 31 days is within the confidential limit of 90


async def test_cli_exports_withhold_content_of_classes_the_owner_may_not_read(
    settings, mock, tmp_path
):
    config = tmp_path / "sv.toml"
    config.write_text(
        f'[store]\ndata_dir = "{settings.store.data_dir}"\n'
        '[classification]\ncontent_roles = { confidential = ["auditor"] }\n'
    )
    async with running_gateway(settings) as (_, client, key):
        await client.post(PATHS["chat"], json=body("chat", "hello there"), headers=auth(key))
        await client.post(PATHS["chat"], json=body("chat", f"mail {EMAIL}"), headers=auth(key))
    out = tmp_path / "trail.jsonl"
    made = CliRunner().invoke(
        cli,
        [
            "export",
            "--config",
            str(config),
            "--format",
            "jsonl",
            "--include-content",
            "--class",
            "confidential",
            "--out",
            str(out),
        ],
    )
    assert made.exit_code == 0, made.output
    [row] = [orjson.loads(line) for line in out.read_text().splitlines()]
    assert row["classification"] == "confidential"
    assert row["content_withheld"] is True and row["prompt"] is None
    manifest = orjson.loads((tmp_path / "trail.jsonl.manifest.json").read_bytes())
    assert manifest["filters"] == {"classification": "confidential"}
