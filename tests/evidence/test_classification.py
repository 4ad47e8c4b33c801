"""Every record gets a data class (SPEC §7c): from its findings, its project's default or its
key's declared class, whichever is highest; on every API, streamed or not, and on events."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from signalvault.config import ClassificationSettings
from signalvault.evidence.classes import Classifier, finding_class, highest
from tests.conftest import records, running_gateway
from tests.evidence.helpers import AWS_KEY, EMAIL, PATHS, auth, body

pytestmark = pytest.mark.anyio

CALLS = [
    ("chat", False),
    ("chat", True),
    ("responses", False),
    ("responses", True),
    ("embeddings", False),
    ("messages", False),
    ("messages", True),
]


@pytest.mark.parametrize(("api", "stream"), CALLS)
async def test_every_api_and_stream_records_the_class_its_findings_call_for(
    settings, mock, api, stream
):
    async with running_gateway(settings) as (app, client, key):
        plain = await client.post(
            PATHS[api], json=body(api, "hello", stream=stream), headers=auth(key)
        )
        personal = await client.post(
            PATHS[api], json=body(api, f"mail {EMAIL}", stream=stream), headers=auth(key)
        )
        secret = await client.post(
            PATHS[api], json=body(api, f"key {AWS_KEY}", stream=stream), headers=auth(key)
        )
        assert (plain.status_code, personal.status_code, secret.status_code) == (200, 200, 400)
        found = {r["id"]: r["classification"] for r in records(app)}
    assert found[plain.headers["x-signalvault-request-id"]] == "internal"
    assert found[personal.headers["x-signalvault-request-id"]] == "confidential"
    assert found[secret.headers["x-signalvault-request-id"]] == "restricted"


async def test_project_default_and_declared_key_class_raise_the_baseline(settings, mock):
    async with running_gateway(settings) as (app, client, _):
        assert app.services is not None
        keyring = app.services.keyring
        billing, billing_secret = keyring.create(name="b", environment="dev", project="billing")
        plain_key, plain_secret = keyring.create(name="p", environment="dev", project="web")
        declared = ClassificationSettings(
            projects={"billing": "confidential"}, keys={plain_key.id: "restricted"}
        )
        app.services.trail.classifier = Classifier(declared)
        first = await client.post(
            PATHS["chat"], json=body("chat", "hi"), headers=auth(billing_secret)
        )
        second = await client.post(
            PATHS["chat"], json=body("chat", "hi"), headers=auth(plain_secret)
        )
        found = {r["id"]: r["classification"] for r in records(app)}
    assert found[first.headers["x-signalvault-request-id"]] == "confidential"
    assert found[second.headers["x-signalvault-request-id"]] == "restricted"
    assert billing.project == "billing"


async def test_refused_requests_and_event_records_are_classified_too(settings, mock):
    async with running_gateway(settings) as (app, client, _):
        refused = await client.post(PATHS["chat"], json=body("chat", "hi"), headers=auth("sv-bad"))
        assert refused.status_code == 401
        assert app.services is not None
        app.services.trail.record_event("settings", "test", {"setting": "x"})
        app.services.trail.record_event("erasure", "test", {}, end_user="u-1")
        rows = records(app)
    assert all(r["classification"] for r in rows), [r["kind"] for r in rows]
    by_kind = {r["kind"]: r["classification"] for r in rows}
    assert by_kind["interaction"] == "internal"
    assert by_kind["settings"] == "internal"
    assert by_kind["erasure"] == "confidential"  # it names a person


async def test_logs_filter_by_class(settings, mock, tmp_path):
    from click.testing import CliRunner

    from signalvault.cli.main import cli

    config = tmp_path / "sv.toml"
    config.write_text(f'[store]\ndata_dir = "{settings.store.data_dir}"\n')
    async with running_gateway(settings) as (app, client, key):
        await client.post(PATHS["chat"], json=body("chat", "hello"), headers=auth(key))
        await client.post(PATHS["chat"], json=body("chat", f"to {EMAIL}"), headers=auth(key))
        assert app.services is not None
        app.services.store.flush()
        result = CliRunner().invoke(
            cli, ["logs", "--config", str(config), "--json", "--class", "confidential"]
        )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and '"classification":"confidential"' in lines[0]


@pytest.mark.parametrize(
    ("evaluations", "expected"),
    [
        ([], None),
        ([{"detector": "pii", "outcome": "pass"}], None),
        ([{"detector": "pii", "outcome": "redacted"}], "confidential"),
        (
            [
                {"detector": "pii", "outcome": "logged"},
                {"detector": "secrets", "outcome": "blocked"},
            ],
            "restricted",
        ),
        ([{"detector": "prompt_injection", "outcome": "logged"}], None),
    ],
)
def test_findings_map_to_classes(evaluations, expected):
    assert finding_class(evaluations) == expected


def test_the_highest_class_wins_and_a_class_is_never_lowered():
    assert highest(["internal", None, "public", "confidential"]) == "confidential"
    classifier = Classifier(replace(ClassificationSettings(), default="public"))

    seen = SimpleNamespace(key=None, classification="restricted", evaluations=[])
    assert classifier(seen) == "restricted"
