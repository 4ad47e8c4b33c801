"""The SOC 2 report (SPEC §8) on a seeded trail: every criterion present with evidence that says
how it was produced; a deliberately weak configuration shows each gap with its remedy; no prompt
or response content anywhere in it; the JSON's signature verifies and breaks when edited."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace

import orjson
import pytest
from click.testing import CliRunner

from signalvault.cli.main import cli
from signalvault.config import (
    AlertSettings,
    GuardrailSettings,
    PrivacySettings,
    RetentionSettings,
    Secret,
)
from signalvault.trail.export import manifest as manifests
from tests.conftest import running_gateway
from tests.evidence.helpers import (
    AWS_KEY,
    CANARY,
    EMAIL,
    PATHS,
    auth,
    body,
    provider,
    with_register,
)

pytestmark = pytest.mark.anyio
CRITERIA = [
    "CC6.1",
    "CC6.2",
    "CC6.3",
    "CC6.6",
    "CC6.7",
    "CC7.2",
    "CC7.3",
    "CC7.4",
    "CC8.1",
    "A1.2",
    "PI1.2",
    "PI1.3",
    "PI1.4",
    "PI1.5",
    "C1.1",
    "C1.2",
    "P3.1",
    "P4.1",
    "P4.2",
    "P4.3",
    "P5.1",
    "P6.2",
    "P6.4",
    "P6.5",
]
PROVENANCE = {"produced_by", "generated_at", "row_count", "trail_range", "valid_until"}
PASSWORD = "correct horse battery staple 9"


def strong(settings, base_url):
    registered = with_register(
        settings,
        provider(
            "eu",
            base_url,
            dpa=True,
            dpa_reference="DPA-2026-17",
            dpa_signed="2026-01-10",
            dpa_review="2099-01-10",
            region="eu-west-1",
            processor="Microsoft Azure",
            sub_processors=("Microsoft Ireland",),
            retention_terms="30 days abuse monitoring",
        ),
    )
    # The Anthropic provider has no DPA: it may receive no personal data.
    registered = replace(
        registered,
        providers=tuple(
            replace(p, allowed_classes=("public", "internal")) if p.kind == "anthropic" else p
            for p in registered.providers
        ),
    )
    return replace(
        registered,
        alerts=AlertSettings(webhook_url=Secret("http://127.0.0.1:9/alerts")),
        retention=RetentionSettings(days=365, classes={"restricted": 30, "confidential": 90}),
        privacy=PrivacySettings(
            lawful_basis={"default": "contract"}, purposes={"default": "customer support"}
        ),
    )


def weak(settings, base_url):
    return replace(
        with_register(settings, provider("cheap", base_url)),
        guardrails=GuardrailSettings(failure_mode="open", two_person_review=False),
    )


async def seed(settings, config, *, tamper: bool = False, old_key: bool = False) -> None:
    """Traffic with a secret, personal data and canaries; an account; sealed (and damaged)."""
    async with running_gateway(settings) as (app, client, key):
        for i in range(4):
            await client.post(PATHS["chat"], json=body("chat", f"{CANARY} {i}"), headers=auth(key))
        await client.post(PATHS["chat"], json=body("chat", f"mail {EMAIL}"), headers=auth(key))
        await client.post(PATHS["chat"], json=body("chat", f"use {AWS_KEY}"), headers=auth(key))
        assert app.evidence.desk is not None
        app.evidence.desk.drain()
    runner = CliRunner()
    assert runner.invoke(cli, ["audit", "seal", "--config", str(config)]).exit_code == 0
    db = sqlite3.connect(settings.store.data_dir / "signalvault.db")
    if tamper:
        db.execute("UPDATE audit_records SET model_used = 'x' WHERE seq = 2")
    if old_key:
        db.execute("UPDATE gateway_keys SET created_at = ?", (time.time() - 200 * 86400,))
    db.commit()
    db.close()


def report(config, out, fmt="json"):
    made = CliRunner().invoke(
        cli, ["report", "soc2", "--config", str(config), "--format", fmt, "--out", str(out)]
    )
    assert made.exit_code == 0, made.output
    return out.read_bytes()


def build(settings, *, resolve_incidents: bool = False) -> dict:
    """The report built in process for `settings` (the register lives in them, not in a file)."""
    from signalvault.control.services import open_services
    from signalvault.evidence.report.build import build_report, default_period
    from signalvault.trail.signing import load_signer

    services = open_services(settings)
    try:
        if resolve_incidents:
            for incident in services.incidents.list():
                services.incidents.resolve(incident.id, "test", "handled")
        return build_report(
            services.store,
            services.trail,
            settings,
            services.incidents,
            load_signer(services.store, services.trail.master_keys),
            default_period(),
            "test",
        )
    finally:
        services.store.close()


def write_config(tmp_path, settings):
    config = tmp_path / "sv.toml"
    config.write_text(f'[store]\ndata_dir = "{settings.store.data_dir}"\n')
    return config


async def test_every_criterion_is_present_with_evidence_and_a_strong_setup_is_met(
    settings, mock_provider, mock, tmp_path
):
    good = strong(settings, mock_provider[1])
    config = write_config(tmp_path, good)
    await seed(good, config)
    account = CliRunner().invoke(
        cli,
        [
            "users",
            "create",
            "--email",
            "sec@example.com",
            "--role",
            "security",
            "--password-stdin",
            "--config",
            str(config),
        ],
        input=PASSWORD + "\n",
    )
    assert account.exit_code == 0, account.output
    built = build(good, resolve_incidents=True)
    assert [c["id"] for c in built["criteria"]] == CRITERIA
    for criterion in built["criteria"]:
        assert criterion["evidence"], criterion["id"]
        for item in criterion["evidence"]:
            assert set(item) >= PROVENANCE, (criterion["id"], item["title"])
            assert item["produced_by"]["query"]
    statuses = {c["id"]: c["status"] for c in built["criteria"]}
    gaps = {c["id"]: c["gaps"] for c in built["criteria"] if c["gaps"]}
    assert gaps == {}, gaps
    assert statuses["P6.2"] == "met" and statuses["P3.1"] == "met"
    disclosed = next(c for c in built["criteria"] if c["id"] == "P6.2")["evidence"][0]
    assert disclosed["table"]["rows"] == [["eu", "confidential", 1]]
    sealed = next(c for c in built["criteria"] if c["id"] == "PI1.5")["evidence"][0]
    assert sealed["figures"]["status"] == "intact"
    assert sealed["trail_range"]["checkpoint"]["tree_size"] > 0
    assert manifests.check_signature(built).is_ok


async def test_a_weak_configuration_shows_each_gap_with_a_remedy(
    settings, mock_provider, mock, tmp_path
):
    poor = weak(settings, mock_provider[1])
    config = write_config(tmp_path, poor)
    config.write_text(
        config.read_text()
        + '[guardrails]\nfailure_mode = "open"\ntwo_person_review = false\n'
        + f'[[providers]]\nname = "cheap"\nkind = "openai"\nbase_url = "{mock_provider[1]}"\n'
        + 'models = ["gpt-*"]\napi_key = "sk-x"\n'
    )
    await seed(poor, config, tamper=True, old_key=True)
    built = orjson.loads(report(config, tmp_path / "weak.json"))
    gaps = {c["id"]: " | ".join(g["problem"] for g in c["gaps"]) for c in built["criteria"]}
    expected = {
        "CC6.1": "never rotated",
        "CC6.2": "no dashboard or admin-API account",
        "CC6.7": "without a DPA on file",
        "CC7.2": "guardrails fail open",
        "CC8.1": "two-person review of policy changes is off",
        "PI1.5": "the trail does not verify",
        "C1.2": "no retention is set",
        "P3.1": "no declared lawful basis",
        "P4.2": "kept without a time limit",
        "P6.4": "received personal data in the period without a DPA",
        "P6.5": "retention terms are not stated",
    }
    for criterion, problem in expected.items():
        assert problem in gaps[criterion], (criterion, gaps[criterion])
    for criterion in built["criteria"]:
        assert criterion["status"] == ("gap" if criterion["gaps"] else criterion["status"])
        assert all(g["remedy"] for g in criterion["gaps"])
    assert built["summary"]["gap"] >= len(expected)


async def test_no_content_in_the_report_and_the_signature_verifies(
    settings, mock_provider, mock, tmp_path
):
    good = strong(settings, mock_provider[1])
    config = write_config(tmp_path, good)
    await seed(good, config)
    raw = report(config, tmp_path / "r.json")
    html = report(config, tmp_path / "r.html", "html")
    for text in (CANARY, EMAIL, AWS_KEY, "You said"):
        assert text.encode() not in raw and text.encode() not in html, text
    runner = CliRunner()
    checked = runner.invoke(cli, ["report", "verify", str(tmp_path / "r.json")])
    assert checked.exit_code == 0 and "ok    signature" in checked.output
    edited = orjson.loads(raw)
    edited["summary"]["gap"] = 0
    edited["criteria"][0]["status"] = "met"
    (tmp_path / "edited.json").write_bytes(orjson.dumps(edited))
    assert runner.invoke(cli, ["report", "verify", str(tmp_path / "edited.json")]).exit_code == 1


async def test_the_html_is_one_self_contained_file(settings, mock_provider, mock, tmp_path):
    good = strong(settings, mock_provider[1])
    config = write_config(tmp_path, good)
    await seed(good, config)
    from signalvault.evidence.report.html import render_html

    html = render_html(build(good))
    assert html.startswith("<!doctype html>")
    assert "<script" not in html and "src=" not in html and "@import" not in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "").replace(
        mock_provider[1], ""
    )
    assert html.count("<svg") == 3  # traffic, findings, data flow
    for criterion in CRITERIA:
        assert f'id="{criterion}"' in html
    assert "DPA-2026-17" in html and "eu-west-1" in html  # the data flow names them
