"""Auditor samples (SPEC §7c): a reproducible draw of sealed records with Merkle inclusion
proofs against a signed checkpoint, verified offline from the file alone; any changed field or
proof, or a proof against another checkpoint, fails and is named."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from signalvault.cli.main import cli
from signalvault.evidence.proofs import ProofTree
from signalvault.store import RecordFilter
from signalvault.trail.integrity.merkle import inclusion_proof, leaf_hash, root_of
from tests.conftest import running_gateway
from tests.evidence.helpers import CANARY, EMAIL, PATHS, auth, body

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sealed(settings, mock, tmp_path):
    """A trail of 12 interactions (one with personal data), sealed; the config file to open it."""
    config = tmp_path / "sv.toml"
    config.write_text(f'[store]\ndata_dir = "{settings.store.data_dir}"\n')
    async with running_gateway(settings) as (_, client, key):
        for i in range(11):
            await client.post(PATHS["chat"], json=body("chat", f"{CANARY} {i}"), headers=auth(key))
        await client.post(PATHS["chat"], json=body("chat", f"mail {EMAIL}"), headers=auth(key))
    assert CliRunner().invoke(cli, ["audit", "seal", "--config", str(config)]).exit_code == 0
    return config


def sample(config, out, *extra: str):
    return CliRunner().invoke(
        cli, ["audit", "sample", "--config", str(config), "--out", str(out), *extra]
    )


def verify(path, *extra: str):
    return CliRunner().invoke(cli, ["audit", "verify-sample", str(path), *extra])


async def test_a_sample_verifies_offline_and_is_reproducible(sealed, tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    made = sample(sealed, first, "--n", "5", "--seed", "42", "--kind", "interaction")
    assert made.exit_code == 0, made.output
    assert (
        sample(sealed, second, "--n", "5", "--seed", "42", "--kind", "interaction").exit_code == 0
    )
    checked = verify(first)
    assert checked.exit_code == 0, checked.output
    assert "5 records, each proven" in checked.output
    a, b = orjson.loads(first.read_bytes()), orjson.loads(second.read_bytes())
    assert [r["leaf"]["id"] for r in a["records"]] == [r["leaf"]["id"] for r in b["records"]]
    assert a["parameters"]["seed"] == 42 and a["population"]["eligible"] == 12
    assert CANARY not in first.read_text()  # no content unless asked for


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda r: r["leaf"].__setitem__("model_used", "gpt-other"), "a field was changed"),
        (lambda r: r["leaf"].__setitem__("outcome", "blocked"), "a field was changed"),
        (lambda r: r["proof"].__setitem__(0, "00" * 32), "inclusion proof"),
        (lambda r: r.__setitem__("seq", r["seq"] + 1), "seq differs"),
    ],
)
async def test_any_changed_field_or_proof_fails_and_names_the_record(
    sealed, tmp_path, change, named
):
    path = tmp_path / "s.json"
    assert sample(sealed, path, "--n", "3", "--seed", "7").exit_code == 0
    document = orjson.loads(path.read_bytes())
    victim = document["records"][1]
    change(victim)
    path.write_bytes(orjson.dumps(document))
    checked = verify(path)
    assert checked.exit_code == 1
    assert "FAIL  signature" in checked.output  # the file's own signature no longer holds
    assert f"record #2 ({victim['leaf']['id']}" in checked.output and named in checked.output


async def test_a_proof_against_a_different_checkpoint_fails(sealed, settings, mock, tmp_path):
    path = tmp_path / "s.json"
    assert sample(sealed, path, "--n", "4", "--seed", "1").exit_code == 0
    old = orjson.loads(path.read_bytes())["checkpoint"]
    async with running_gateway(settings) as (_, client, key):
        await client.post(PATHS["chat"], json=body("chat", "later"), headers=auth(key))
    assert CliRunner().invoke(cli, ["audit", "seal", "--config", str(sealed)]).exit_code == 0
    newer = tmp_path / "newer.json"
    assert sample(sealed, newer, "--n", "1", "--seed", "1").exit_code == 0
    new = orjson.loads(newer.read_bytes())["checkpoint"]
    assert new["tree_size"] > old["tree_size"]
    trusted = tmp_path / "trusted.jsonl"
    trusted.write_text(orjson.dumps(new).decode() + "\n")
    checked = verify(path, "--checkpoint", str(trusted))
    assert checked.exit_code == 1 and "against a different checkpoint" in checked.output
    # The same proofs presented against the newer (genuine, signed) checkpoint do not hold.
    swapped = orjson.loads(path.read_bytes())
    swapped["checkpoint"] = new
    path.write_bytes(orjson.dumps(swapped))
    checked = verify(path)
    assert checked.exit_code == 1
    assert "does not lead to the checkpoint's root" in checked.output


async def test_content_is_included_on_request_and_the_sample_is_recorded(
    sealed, settings, tmp_path
):
    path = tmp_path / "c.json"
    made = sample(sealed, path, "--n", "12", "--seed", "3", "--include-content")
    assert made.exit_code == 0, made.output
    assert verify(path).exit_code == 0
    document = orjson.loads(path.read_bytes())
    prompts = [r["content"]["prompt"] for r in document["records"] if "content" in r]
    assert any(CANARY in p for p in prompts)
    from signalvault.control.services import open_services

    services = open_services(settings)
    try:
        [event] = services.store.list_records(RecordFilter(kind="audit_sample"), limit=5)
    finally:
        services.store.close()
    details = orjson.loads(event["details"])
    assert event["id"] == document["audit_record_id"]
    assert details["include_content"] is True and details["drawn"] == 12
    assert details["records"] == [r["leaf"]["id"] for r in document["records"]]


async def test_content_of_a_class_the_owner_may_not_read_is_withheld(sealed, tmp_path):
    text = sealed.read_text() + '[classification]\ncontent_roles = {confidential = ["auditor"]}\n'
    sealed.write_text(text)
    path = tmp_path / "w.json"
    made = sample(
        sealed, path, "--n", "12", "--seed", "3", "--kind", "interaction", "--include-content"
    )
    assert made.exit_code == 0
    document = orjson.loads(path.read_bytes())
    contents = {r["leaf"]["classification"]: r["content"] for r in document["records"]}
    assert contents["confidential"] == {"withheld": True}
    assert EMAIL not in path.read_text() and "[EMAIL_1]" not in path.read_text()
    assert verify(path).exit_code == 0


def test_nothing_sealed_is_a_clear_error(settings, tmp_path):
    config = tmp_path / "empty.toml"
    config.write_text(f'[store]\ndata_dir = "{tmp_path / "fresh"}"\n')
    made = CliRunner().invoke(
        cli, ["audit", "sample", "--n", "3", "--config", str(config), "--out", str(tmp_path / "x")]
    )
    assert made.exit_code == 1 and "nothing is sealed yet" in made.output


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 31, 64, 100])
def test_proof_tree_matches_the_reference_merkle_proofs(size):
    leaves = [leaf_hash(str(i).encode()) for i in range(size)]
    tree = ProofTree(leaves)
    assert tree.root() == root_of(leaves)
    for index in range(size):
        assert tree.inclusion(index) == inclusion_proof(leaves, index)
