"""Tamper evidence: sealing, signed checkpoints and `audit verify` against every kind of change."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import logging
import threading
import time
from dataclasses import replace

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from signalvault.cli.main import cli
from signalvault.config import AuditSettings, Settings
from signalvault.control.services import Services, open_services
from signalvault.crypto.envelope import load_master_key
from signalvault.store.schema import audit_records
from signalvault.store.sqlite import DATABASE_FILE, SqliteStore
from signalvault.trail.audit import OK, Interaction
from signalvault.trail.integrity.checkpoint import parse_json_line, sign_checkpoint
from signalvault.trail.integrity.leaf import ADDED_COLUMNS, LEAF_COLUMNS, leaf_data, record_leaf
from signalvault.trail.integrity.merkle import Frontier
from signalvault.trail.integrity.sealer import Sealer, seal_now
from signalvault.trail.integrity.sink import WebhookSender
from signalvault.trail.integrity.verify import VerifyReport, verify_trail
from signalvault.trail.signing import load_signer
from tests.conftest import make_settings

URL = "http://127.0.0.1:9/v1"  # never called: these tests use the store API only


@pytest.fixture
def settings(tmp_path) -> Settings:
    return make_settings(tmp_path, URL)


@pytest.fixture
def services(settings):
    opened = open_services(settings)
    yield opened
    opened.sealer.close()
    opened.store.close()


# The leaf data of a minimal record as the release before migration 0008 computed it.
VERSION_1_LEAF = (
    b'{"_v":1,"actor":null,"api":null,"attempts":null,"completed_at":null,"completion_tokens":'
    b'null,"created_at":1.0,"data_key_id":null,"details":null,"end_user":null,"environment":nu'
    b'll,"error_code":null,"guardrails":null,"id":"r","is_stream":false,"key_id":null,"kind":"'
    b'interaction","latency_ms":null,"model_requested":null,"model_used":null,"outcome":"ok","'
    b'policy_version":null,"project":null,"prompt_ct":null,"prompt_tokens":null,"provider":nul'
    b'l,"response_ct":null,"seq":0,"session_id":null,"status_code":null,"tokens_estimated":fal'
    b'se,"tombstone_reason":null,"tombstoned_at":null,"total_tokens":null,"trace_id":null,"ttf'
    b'b_ms":null}'
)


def add_interactions(services: Services, count: int, *, complete: bool = True) -> list[str]:
    """Forward-style records: written ahead with encrypted prompt, completed with a response."""

    async def run() -> list[str]:
        ids = []
        for i in range(count):
            interaction = Interaction(api="chat", model_requested="gpt-4o", end_user=f"u{i % 3}")
            await services.trail.begin(interaction, b"prompt %d" % i)
            if complete:
                interaction.outcome, interaction.status_code = OK, 200
                interaction.model_used = "gpt-4o-2024"
                services.trail.complete(interaction, b"response %d" % i)
            ids.append(interaction.id)
        await services.store.write_ahead([])  # settles the writer before this loop closes
        return ids

    ids = asyncio.run(run())
    services.store.flush()
    return ids


def verify(services: Services, settings: Settings, **options) -> VerifyReport:
    master_key = load_master_key(settings.crypto, settings.store.data_dir)
    return verify_trail(services.store, master_key, settings.audit, **options)


def execute(services: Services, sql: str, **params) -> None:
    with services.store.engine.begin() as conn:
        conn.execute(text(sql), params)


def row_by_seq(services: Services, seq: int) -> dict:
    with services.store.engine.connect() as conn:
        return dict(
            conn.execute(audit_records.select().where(audit_records.c.seq == seq)).one()._mapping
        )


def sealed(services: Services, settings: Settings, count: int = 6) -> list[str]:
    ids = add_interactions(services, count)
    services.trail.record_event("admin.key_created", "cli:test", {"key": "k1"})
    result = seal_now(services)
    assert result.is_leader
    assert result.sealed == count + 1
    return ids


def test_seal_numbers_records_and_verify_finds_the_trail_intact(services, settings):
    sealed(services, settings)
    with services.store.engine.connect() as conn:
        seqs = [r.seq for r in conn.execute(text("SELECT seq FROM audit_records ORDER BY seq"))]
    assert seqs == list(range(7))
    report = verify(services, settings)
    assert report.status == "intact", report.findings
    assert (report.records_checked, report.checkpoints_checked, report.tree_size) == (7, 1, 7)
    add_interactions(services, 2)
    assert seal_now(services).tree_size == 9
    report = verify(services, settings)
    assert report.is_intact and report.checkpoints_checked == 2


def test_leaf_covers_every_column_but_the_leaf_hash():
    assert set(LEAF_COLUMNS) == {c.name for c in audit_records.c} - {"leaf_hash"}
    # Every column the first leaf version did not know is listed as added (it enters when set).
    first_version = set(orjson.loads(VERSION_1_LEAF))
    assert set(LEAF_COLUMNS) - first_version == set(ADDED_COLUMNS)


def test_a_leaf_sealed_before_added_columns_is_unchanged_by_them():
    """Leaves sealed by earlier releases verify: unset added columns are not part of the data."""
    row = {name: None for name in LEAF_COLUMNS} | {
        "id": "r",
        "kind": "interaction",
        "created_at": 1.0,
        "outcome": "ok",
        "seq": 0,
        "is_stream": False,
        "tokens_estimated": False,
    }
    assert leaf_data(row) == VERSION_1_LEAF
    with_class = leaf_data({**row, "classification": "confidential"})
    assert orjson.loads(with_class)["classification"] == "confidential"


def test_leaf_data_is_canonical_json_whatever_the_driver_returns(services, settings):
    sealed(services, settings)
    row = row_by_seq(services, 0)
    data = orjson.loads(leaf_data(row))
    assert list(data) == sorted(data) and data["_v"] == 1 and data["seq"] == 0
    assert data["prompt_ct"] == hashlib.sha256(row["prompt_ct"]).hexdigest()
    assert "leaf_hash" not in data
    # SQLite hands a raw cursor 0/1 for booleans; the leaf is the same.
    raw = {**row, "is_stream": int(row["is_stream"]), "tokens_estimated": 0}
    assert leaf_data(raw) == leaf_data(row)
    assert record_leaf({**row, "seq": 1}) != record_leaf(row)


@pytest.mark.parametrize(
    ("column", "sql"),
    [
        ("prompt_ct", "UPDATE audit_records SET prompt_ct = :value WHERE seq = 3"),
        ("model_used", "UPDATE audit_records SET model_used = 'gpt-4o-mini' WHERE seq = 3"),
        ("outcome", "UPDATE audit_records SET outcome = 'blocked' WHERE seq = 3"),
        ("created_at", "UPDATE audit_records SET created_at = created_at + 1 WHERE seq = 3"),
        # A column added after the record was sealed (NULL, so not in its leaf) being set.
        ("classification", "UPDATE audit_records SET classification = 'public' WHERE seq = 3"),
        ("run_id", "UPDATE audit_records SET run_id = 'forged-run' WHERE seq = 3"),
    ],
)
def test_a_changed_column_names_the_record(services, settings, column, sql):
    sealed(services, settings)
    record = row_by_seq(services, 3)
    flipped = bytes([record["prompt_ct"][0] ^ 1]) + record["prompt_ct"][1:]
    execute(services, sql, value=flipped)
    report = verify(services, settings)
    assert report.status == "tampered"
    first = report.first()
    assert (first.kind, first.record_id, first.seq) == ("changed", record["id"], 3)
    assert first.checkpoint == 7  # the checkpoint that sealed it


def test_a_change_with_a_recomputed_leaf_hash_breaks_the_checkpoint(services, settings):
    sealed(services, settings)
    record = row_by_seq(services, 2)
    record["model_used"] = "forged"
    execute(
        services,
        "UPDATE audit_records SET model_used = 'forged', leaf_hash = :h WHERE seq = 2",
        h=record_leaf(record),
    )
    report = verify(services, settings)
    first = report.first()
    assert first.kind == "checkpoint" and first.checkpoint == 7
    assert "root does not match" in first.message


def test_a_deleted_sealed_record_is_reported_removed(services, settings):
    sealed(services, settings)
    execute(services, "DELETE FROM audit_records WHERE seq = 4")
    report = verify(services, settings)
    first = report.first()
    assert (first.kind, first.seq) == ("removed", 4)
    assert report.counts.get("checkpoint")


def test_deleting_the_newest_sealed_record_is_reported(services, settings):
    sealed(services, settings)
    execute(services, "DELETE FROM audit_records WHERE seq = 6")
    first = verify(services, settings).first()
    assert (first.kind, first.seq) == ("removed", 6)


def forged_row(services: Services, **values) -> dict:
    row = row_by_seq(services, 1)
    row.update(id="0190aaaa-0000-7000-8000-000000000000", seq=None, leaf_hash=None)
    row.update(values)
    return row


def test_a_forged_record_with_a_seq_is_reported_inserted(services, settings):
    sealed(services, settings)
    row = forged_row(services, seq=7)
    row["leaf_hash"] = record_leaf(row)
    with services.store.engine.begin() as conn:
        conn.execute(audit_records.insert().values(**row))
    report = verify(services, settings)
    first = report.first()
    assert (first.kind, first.record_id, first.seq) == ("inserted", row["id"], 7)


def test_a_recent_unsealed_record_is_reported_but_an_old_one_is_suspicious(services, settings):
    sealed(services, settings)
    add_interactions(services, 2, complete=False)  # in flight: not sealable yet
    assert seal_now(services).sealed == 0
    report = verify(services, settings)
    assert report.is_intact and report.unsealed == 2
    row = forged_row(services, created_at=time.time() - 2 * settings.audit.seal_after_seconds)
    with services.store.engine.begin() as conn:
        conn.execute(audit_records.insert().values(**row))
    report = verify(services, settings)
    assert report.status == "suspicious"
    assert report.first().record_id == row["id"] and report.unsealed == 3


def test_swapped_seqs_are_reported_reordered(services, settings):
    sealed(services, settings)
    execute(services, "UPDATE audit_records SET seq = -1 WHERE seq = 2")
    execute(services, "UPDATE audit_records SET seq = 2 WHERE seq = 5")
    execute(services, "UPDATE audit_records SET seq = 5 WHERE seq = -1")
    now_at_2, now_at_5 = row_by_seq(services, 2), row_by_seq(services, 5)
    report = verify(services, settings)
    assert report.counts == {"reordered": 2, "checkpoint": 1}
    first, second = report.findings[:2]
    assert (first.kind, first.record_id, first.seq) == ("reordered", now_at_2["id"], 2)
    assert "sealed at seq 5, now at seq 2" in first.message
    assert (second.record_id, second.seq) == (now_at_5["id"], 5)


def flip_first(data):
    return bytes([data[0] ^ 1]) + data[1:]


@pytest.mark.parametrize(
    ("column", "alter", "expected"),
    [
        ("root_hash", flip_first, "row differs from its signed body"),
        ("signature", flip_first, "signature does not verify"),
        ("body", lambda body: body.replace('"time":', '"time":1'), "signature does not verify"),
        ("body", lambda body: body[:-1], "malformed"),
        ("frontier", flip_first, "stored frontier does not match"),
    ],
)
def test_an_altered_checkpoint_fails(services, settings, column, alter, expected):
    sealed(services, settings)
    add_interactions(services, 3)
    seal_now(services)
    with services.store.engine.begin() as conn:
        select = f"SELECT {column} FROM checkpoints WHERE tree_size = 7"  # noqa: S608
        value = conn.execute(text(select)).scalar()
        conn.execute(
            text(f"UPDATE checkpoints SET {column} = :v WHERE tree_size = 7"),  # noqa: S608
            {"v": alter(value)},
        )
    report = verify(services, settings)
    assert report.status == "tampered"
    first = report.first()
    assert first.kind == "checkpoint" and first.checkpoint == 7
    assert expected in first.message, report.findings


def test_a_removed_checkpoint_breaks_the_chain(services, settings):
    sealed(services, settings)
    add_interactions(services, 3)
    seal_now(services)
    execute(services, "DELETE FROM checkpoints WHERE tree_size = 7")
    first = verify(services, settings).first()
    assert first.checkpoint == 10 and "does not link" in first.message


def test_a_rewritten_store_passes_alone_but_fails_against_a_trusted_checkpoint(
    services, settings, tmp_path
):
    """Someone holding the master key can re-sign a rewritten history; only a checkpoint copy
    kept outside the store shows it."""
    sealed(services, settings)
    trusted = tmp_path / "trusted.jsonl"
    assert (
        CliRunner()
        .invoke(
            cli,
            ["audit", "verify", "--export-checkpoints", str(trusted)],
            env={"SIGNALVAULT_DATA_DIR": str(settings.store.data_dir)},
        )
        .exit_code
        == 0
    )
    add_interactions(services, 2)
    seal_now(services)
    assert verify(services, settings, trusted=[parse_json_line(trusted.read_text())]).is_intact

    # Rewrite record seq 1, then rebuild leaves and checkpoints with the deployment's key.
    record = row_by_seq(services, 1)
    record["model_used"] = "rewritten"
    execute(
        services,
        "UPDATE audit_records SET model_used = 'rewritten', leaf_hash = :h WHERE seq = 1",
        h=record_leaf(record),
    )
    master_key = load_master_key(settings.crypto, settings.store.data_dir)
    resign_all(services, load_signer(services.store, master_key))
    assert verify(services, settings).is_intact
    report = verify(services, settings, trusted=[parse_json_line(trusted.read_text())])
    assert report.status == "tampered"
    assert report.first().kind == "trusted" and report.first().checkpoint == 7
    assert report.consistency["is_consistent"] is False


def resign_all(services: Services, signer) -> None:
    with services.store.engine.begin() as conn:
        leaves = [
            r.leaf_hash
            for r in conn.execute(
                text("SELECT leaf_hash FROM audit_records WHERE seq IS NOT NULL ORDER BY seq")
            )
        ]
        sizes = [
            r.tree_size
            for r in conn.execute(text("SELECT tree_size FROM checkpoints ORDER BY tree_size"))
        ]
        conn.execute(text("DELETE FROM checkpoints"))
        frontier, prev = Frontier(), None
        for size in sizes:
            while frontier.size < size:
                frontier.append(leaves[frontier.size])
            checkpoint = sign_checkpoint(signer, size, frontier.root(), prev, time.time())
            conn.execute(
                text("INSERT INTO checkpoints VALUES (:size, :root, :t, :body, :sig, :kid, :fr)"),
                {
                    "size": size,
                    "root": checkpoint.root,
                    "t": checkpoint.time,
                    "body": checkpoint.body,
                    "sig": checkpoint.signature,
                    "kid": checkpoint.key_id,
                    "fr": frontier.to_bytes(),
                },
            )
            prev = checkpoint.digest


def test_a_truncated_tail_is_caught_only_with_a_trusted_checkpoint(services, settings):
    sealed(services, settings)
    add_interactions(services, 3)
    head = seal_now(services).checkpoints[-1]
    execute(services, "DELETE FROM audit_records WHERE seq >= 7")
    execute(services, "DELETE FROM checkpoints WHERE tree_size = 10")
    assert verify(services, settings).is_intact
    report = verify(services, settings, trusted=[parse_json_line(head.json_line())])
    assert report.first().kind == "trusted"
    assert "only 7 records" in report.first().message


def test_a_trusted_checkpoint_from_an_earlier_state_is_consistent(services, settings):
    sealed(services, settings)
    earlier = seal_now(services)  # nothing new: no checkpoint
    assert not earlier.checkpoints
    with services.store.engine.connect() as conn:
        body, sig = conn.execute(text("SELECT body, signature FROM checkpoints")).one()
    from signalvault.trail.integrity.checkpoint import parse_body

    old = parse_body(body, sig)
    add_interactions(services, 5)
    seal_now(services)
    report = verify(services, settings, trusted=[old])
    assert report.is_intact
    assert report.consistency["is_consistent"] and report.consistency["old_size"] == 7
    assert report.consistency["new_size"] == 12 and report.consistency["proof"]


def tombstone(services: Services, record_id: str) -> None:
    kept = {"id", "kind", "created_at", "seq", "leaf_hash", "tombstoned_at", "tombstone_reason"}
    cleared = [c.name for c in audit_records.c if c.name not in kept and c.nullable]
    assignments = ", ".join(f"{name} = NULL" for name in cleared)
    execute(
        services,
        f"UPDATE audit_records SET {assignments}, tombstoned_at = :t, "  # noqa: S608 (test)
        "tombstone_reason = 'erasure' WHERE id = :id",
        t=time.time(),
        id=record_id,
    )


def test_tombstones_before_and_after_sealing_verify(services, settings):
    ids = sealed(services, settings)
    tombstone(services, ids[2])
    later = add_interactions(services, 2)
    tombstone(services, later[0])  # tombstoned before it was sealed
    assert seal_now(services).sealed == 2
    report = verify(services, settings)
    assert report.is_intact, report.findings
    assert report.tombstones == 2


def test_a_tombstone_that_keeps_data_is_reported(services, settings):
    ids = sealed(services, settings)
    tombstone(services, ids[1])
    execute(services, "UPDATE audit_records SET model_used = 'x' WHERE id = :id", id=ids[1])
    first = verify(services, settings).first()
    assert first.kind == "changed" and "model_used" in first.message


def test_a_late_completion_of_a_sealed_record_is_dropped(services, settings, caplog):
    """A request that outlived seal_after_seconds was sealed as unknown; its outcome is lost,
    logged without content, and the trail stays intact."""

    async def begin() -> Interaction:
        interaction = Interaction(api="chat", model_requested="gpt-4o")
        await services.trail.begin(interaction, b"slow prompt")
        await services.store.write_ahead([])
        return interaction

    interaction = asyncio.run(begin())
    services.store.flush()
    future = time.time() + settings.audit.seal_after_seconds + 1
    late = Sealer(
        services.store,
        load_master_key(settings.crypto, settings.store.data_dir),
        settings.audit,
        clock=lambda: future,
    )
    assert late.seal().sealed == 1
    interaction.outcome = OK
    with caplog.at_level(logging.WARNING, logger="signalvault.store"):
        services.trail.complete(interaction, b"late response")
        services.store.flush()
    assert "1 late completion(s) dropped" in caplog.text
    assert "late response" not in caplog.text
    assert services.store.get_record(interaction.id)["outcome"] == "unknown"
    assert verify(services, settings).is_intact


def test_a_record_completed_while_its_seal_is_prepared_is_sealed_as_stored(services, settings):
    """The sealer hashes leaves before it takes the write lock; a record that changes in between
    (here a late completion of a stale in-flight record) is hashed again under the lock."""

    async def begin() -> Interaction:
        interaction = Interaction(api="chat", model_requested="gpt-4o")
        await services.trail.begin(interaction, b"slow prompt")
        await services.store.write_ahead([])
        return interaction

    interaction = asyncio.run(begin())
    services.store.flush()
    future = time.time() + settings.audit.seal_after_seconds + 1
    calls = []

    def clock() -> float:
        # Called once choosing the records, once before reading and hashing them, then as the
        # write transaction begins: the completion lands after the leaves were hashed.
        calls.append(1)
        if len(calls) == 3:
            interaction.outcome, interaction.status_code = OK, 200
            services.trail.complete(interaction, b"late response")
            services.store.flush()
        return future

    master_key = load_master_key(settings.crypto, settings.store.data_dir)
    assert Sealer(services.store, master_key, settings.audit, clock=clock).seal().sealed == 1
    row = services.store.get_record(interaction.id)
    assert row["outcome"] == "ok"
    assert row["leaf_hash"] == record_leaf(row)
    assert verify(services, settings).is_intact


def test_racing_sealers_on_two_stores_keep_one_chain(services, settings):
    master_key = load_master_key(settings.crypto, settings.store.data_dir)
    other = SqliteStore(settings.store.data_dir / DATABASE_FILE)
    other.open()
    try:
        sealers = [services.sealer, Sealer(other, master_key, settings.audit, batch=3)]
        errors: list[BaseException] = []

        def run(sealer: Sealer) -> None:
            try:
                for _ in range(15):
                    sealer.seal()
            except BaseException as exc:
                errors.append(exc)

        add_interactions(services, 5)
        threads = [threading.Thread(target=run, args=(s,)) for s in sealers]
        for thread in threads:
            thread.start()
        for _ in range(4):
            add_interactions(services, 5)
        for thread in threads:
            thread.join()
        assert not errors
        # Whoever holds the lease now seals the rest; then the other takes an expired lease.
        sealers[0].seal()
        sealers[1].seal()
        taker = Sealer(other, master_key, settings.audit, clock=lambda: time.time() + 3600)
        taker.seal()
        with services.store.engine.connect() as conn:
            seqs = [r[0] for r in conn.execute(text("SELECT seq FROM audit_records ORDER BY seq"))]
        assert seqs == list(range(25))
        report = verify(services, settings)
        assert report.is_intact, report.findings
    finally:
        other.close()


def test_an_expired_lease_is_taken_over(services, settings):
    add_interactions(services, 2)
    assert services.sealer.seal().is_leader
    master_key = load_master_key(settings.crypto, settings.store.data_dir)
    second = Sealer(services.store, master_key, settings.audit)
    add_interactions(services, 1)
    assert not second.seal().is_leader
    services.sealer.release()
    result = second.seal()
    assert result.is_leader and result.sealed == 1


def test_checkpoints_are_appended_to_the_checkpoint_file(tmp_path):
    settings = make_settings(tmp_path, URL)
    settings = replace(
        settings, audit=AuditSettings(checkpoint_file=tmp_path / "checkpoints.jsonl")
    )
    services = open_services(settings)
    try:
        add_interactions(services, 3)
        seal_now(services)
        add_interactions(services, 1)
        seal_now(services)
    finally:
        services.sealer.close()
        services.store.close()
    lines = (tmp_path / "checkpoints.jsonl").read_text().splitlines()
    assert [parse_json_line(line).tree_size for line in lines] == [3, 4]
    assert b"prompt" not in (tmp_path / "checkpoints.jsonl").read_bytes()


def test_webhook_retries_until_delivered():
    received: list[bytes] = []
    failures = [2]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if failures[0]:
                failures[0] -= 1
                self.send_response(503)
            else:
                received.append(body)
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sender = WebhookSender(f"http://127.0.0.1:{server.server_port}/cp", backoff=0.01)
        sender.send('{"tree_size": 1}')
        sender.close(timeout=5.0)
    finally:
        server.shutdown()
    assert received == [b'{"tree_size": 1}']
    assert (sender.delivered, sender.failed) == (1, 0)


def test_cli_verify_exit_codes_and_json(services, settings, tmp_path):
    env = {"SIGNALVAULT_DATA_DIR": str(settings.store.data_dir)}
    runner = CliRunner()
    add_interactions(services, 4)
    sealed_run = runner.invoke(cli, ["audit", "seal", "--json"], env=env)
    assert sealed_run.exit_code == 0, sealed_run.output
    assert orjson.loads(sealed_run.output)["sealed"] == 4
    intact = runner.invoke(cli, ["audit", "verify"], env=env)
    assert intact.exit_code == 0 and intact.output.startswith("intact: 4 sealed records")
    record = row_by_seq(services, 1)
    execute(services, "UPDATE audit_records SET end_user = 'mallory' WHERE seq = 1")
    tampered = runner.invoke(cli, ["audit", "verify", "--json"], env=env)
    assert tampered.exit_code == 3
    report = orjson.loads(tampered.output)
    assert report["status"] == "tampered"
    assert report["findings"][0]["record_id"] == record["id"]
    text_run = runner.invoke(cli, ["audit", "verify"], env=env)
    assert text_run.exit_code == 3
    assert f"TAMPERED: record {record['id']} at seq 1 changed" in text_run.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not a checkpoint\n")
    refused = runner.invoke(cli, ["audit", "verify", "--trusted-checkpoint", str(bad)], env=env)
    assert refused.exit_code == 1 and "line 1" in refused.output


def test_cli_verify_starts_no_wal_checkpointer_thread(services, settings, monkeypatch):
    """`audit verify` only reads: it stays single-threaded (glibc's cheaper lock paths)."""
    from signalvault.store.wal import WalCheckpointer

    def refuse(self):
        raise AssertionError("audit verify started a checkpointer thread")

    add_interactions(services, 2)
    env = {"SIGNALVAULT_DATA_DIR": str(settings.store.data_dir)}
    assert CliRunner().invoke(cli, ["audit", "seal"], env=env).exit_code == 0
    monkeypatch.setattr(WalCheckpointer, "start", refuse)
    result = CliRunner().invoke(cli, ["audit", "verify"], env=env, catch_exceptions=False)
    assert result.exit_code == 0 and result.output.startswith("intact: 2 sealed records")


def test_cli_verify_exits_4_for_suspicious_unsealed_records(services, settings):
    add_interactions(services, 1)
    execute(services, "UPDATE audit_records SET created_at = created_at - 86400")
    result = CliRunner().invoke(
        cli, ["audit", "verify"], env={"SIGNALVAULT_DATA_DIR": str(settings.store.data_dir)}
    )
    assert result.exit_code == 4 and result.output.startswith("SUSPICIOUS")


@pytest.mark.anyio
async def test_the_gateway_seals_on_shutdown(tmp_path, mock_provider):
    from tests.conftest import running_gateway

    settings = make_settings(tmp_path, mock_provider[1])
    async with running_gateway(settings) as (_, client, key):
        response = await client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert response.status_code == 200
    services = open_services(settings)
    try:
        record = services.store.get_record(response.headers["x-signalvault-request-id"])
        assert record is not None and record["seq"] is not None
        assert verify(services, settings).is_intact
    finally:
        services.store.close()


@pytest.fixture
def pg_store():
    """A SqlStore on PostgreSQL in a schema of its own (dropped afterwards)."""
    import os
    import uuid

    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError

    from signalvault.store.sql import SqlStore

    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    schema = "seal_" + uuid.uuid4().hex[:12]
    admin = create_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except OperationalError:
        admin.dispose()
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable")
    engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    store = SqlStore(engine)
    store.open()
    try:
        yield store
    finally:
        store.close()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_racing_sealers_on_postgresql_keep_one_chain(pg_store, settings):
    from signalvault.trail.audit import AuditTrail

    master_key = load_master_key(settings.crypto, settings.store.data_dir)
    trail = AuditTrail(pg_store, master_key)
    for i in range(40):
        trail.record_event("admin.test", "cli:test", {"n": i})
    # The second sealer's clock runs ahead: it takes the lease over whenever it looks expired.
    sealers = [
        Sealer(pg_store, master_key, settings.audit, batch=7),
        Sealer(pg_store, master_key, settings.audit, batch=7, clock=lambda: time.time() + 3600),
    ]
    errors: list[BaseException] = []

    def run(sealer: Sealer) -> None:
        try:
            sealer.seal()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in sealers for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    sealers[1].seal()
    with pg_store.engine.connect() as conn:
        seqs = [r[0] for r in conn.execute(text("SELECT seq FROM audit_records ORDER BY seq"))]
        sizes = [r[0] for r in conn.execute(text("SELECT tree_size FROM checkpoints"))]
    assert seqs == list(range(40)) and max(sizes) == 40
    report = verify_trail(pg_store, master_key, settings.audit)
    assert report.is_intact, report.findings
    with pg_store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET details = '{}' WHERE seq = 11"))
    first = verify_trail(pg_store, master_key, settings.audit).first()
    assert (first.kind, first.seq) == ("changed", 11)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[audit]\nseal_after_seconds = 30\n", "longer than the longest provider timeout"),
        ("[audit]\nseal_interval_seconds = 0\n", "seal_interval_seconds must be positive"),
        ("[audit]\ncheckpoint_webhook = 'ftp://x'\n", "http:// or https://"),
    ],
)
def test_audit_settings_are_checked(tmp_path, toml, message):
    from signalvault.config import load_settings
    from signalvault.errors import ConfigError

    path = tmp_path / "signalvault.toml"
    path.write_text(
        toml + "[[providers]]\nname = 'p'\nkind = 'openai'\nbase_url = 'http://127.0.0.1:9/v1'\n"
        "api_key = 'k'\ntimeout_seconds = 60\n"
    )
    with pytest.raises(ConfigError, match=message):
        load_settings(path, environ={})


def test_a_forged_checkpoint_claiming_a_huge_tree_is_reported_quickly(services, settings):
    sealed(services, settings)
    execute(
        services,
        "INSERT INTO checkpoints SELECT 1000000000000, root_hash, created_at, body, signature, "
        "signing_key_id, frontier FROM checkpoints WHERE tree_size = 7",
    )
    report = verify(services, settings)
    assert report.first().kind == "removed" and report.tree_size == 10**12
    assert any("row differs from its signed body" in f.message for f in report.findings)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_record_changed_after_its_seal_was_prepared_is_sealed_as_stored(
    request, settings, monkeypatch, backend
):
    """The seal's write transaction does not read the rows again: each seal is set only on a row
    still exactly as read (any column), and a change in between (here `details`, written by
    another connection) makes the sealer read and hash again under the lock."""
    from signalvault.store import seal_queries
    from signalvault.trail.audit import AuditTrail

    master_key = load_master_key(settings.crypto, settings.store.data_dir)
    if backend == "postgres":
        store = request.getfixturevalue("pg_store")
    else:
        store = request.getfixturevalue("services").store
    trail = AuditTrail(store, master_key)
    ids = [trail.record_event("admin.test", "cli:test", {"n": i}) for i in range(5)]
    locked_reads: list[int] = []
    real_unsealed_rows = seal_queries.unsealed_rows

    def unsealed_rows(conn, ids, *, lock=False):
        if lock:
            locked_reads.append(len(ids))
        return real_unsealed_rows(conn, ids, lock=lock)

    monkeypatch.setattr(seal_queries, "unsealed_rows", unsealed_rows)
    first = Sealer(store, master_key, settings.audit)
    assert first.seal().sealed == 5
    first.release()
    assert locked_reads == []  # nothing changed: no second read under the lock

    more = [trail.record_event("admin.test", "cli:test", {"n": i}) for i in range(5, 9)]
    calls = []

    def clock() -> float:
        # Called choosing the records, before reading and hashing them, then as the write
        # transaction begins: the change lands after the leaves were hashed.
        calls.append(1)
        if len(calls) == 3:
            with store.engine.begin() as conn:
                conn.execute(
                    text("UPDATE audit_records SET details = '{\"n\": 99}' WHERE id = :id"),
                    {"id": more[2]},
                )
        return time.time()

    assert Sealer(store, master_key, settings.audit, clock=clock).seal().sealed == 4
    assert locked_reads == [4]
    for record_id in ids + more:
        row = store.get_record(record_id)
        assert row is not None and row["leaf_hash"] == record_leaf(row)
    assert store.get_record(more[2])["details"] == '{"n": 99}'
    assert verify_trail(store, master_key, settings.audit).is_intact


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request):
    if request.param == "postgres":
        return request.getfixturevalue("pg_store")
    return request.getfixturevalue("services").store


def seqs_and_sizes(store) -> tuple[list[int], list[int]]:
    with store.engine.connect() as conn:
        seqs = [r[0] for r in conn.execute(text("SELECT seq FROM audit_records"))]
        sizes = [r[0] for r in conn.execute(text("SELECT tree_size FROM checkpoints"))]
    return sorted(seqs, key=lambda seq: -1 if seq is None else seq), sorted(sizes)


def test_a_seal_writes_its_seals_in_short_steps_under_one_checkpoint(
    any_store, settings, monkeypatch
):
    from signalvault.trail import integrity
    from signalvault.trail.audit import AuditTrail

    monkeypatch.setattr(integrity.sealer, "SEAL_STEP", 4)
    master_key = load_master_key(settings.crypto, settings.store.data_dir)
    trail = AuditTrail(any_store, master_key)
    for i in range(11):
        trail.record_event("admin.test", "cli:test", {"n": i})
    steps: list[int] = []
    real_assign = integrity.sealer.q.SealAssigner.__call__

    syncs: list[int] = []

    def assign_seals(self, conn, rows, seals):
        steps.append(len(rows))
        if conn.dialect.name == "sqlite":
            syncs.append(conn.connection.cursor().execute("PRAGMA synchronous").fetchone()[0])
        return real_assign(self, conn, rows, seals)

    monkeypatch.setattr(integrity.sealer.q.SealAssigner, "__call__", assign_seals)
    assert Sealer(any_store, master_key, settings.audit).seal().sealed == 11
    assert steps == [4, 4, 3]
    if syncs:  # SQLite: only the checkpoint's commit is fsynced; pooled connections restored
        assert syncs == [1, 1, 2]
        with any_store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    assert seqs_and_sizes(any_store) == (list(range(11)), [11])
    assert verify_trail(any_store, master_key, settings.audit).is_intact


def test_records_numbered_by_a_seal_that_stopped_are_sealed_again(any_store, settings, monkeypatch):
    """A seal that stops between its steps (crash, lease lost) leaves records numbered beyond
    the last checkpoint: verify counts them as unsealed, not inserted (the seal recorded how many
    it numbers; a seq beyond those is still reported), and the next seal, in this process or
    another, unseals and seals them under a checkpoint."""
    from signalvault.trail import integrity
    from signalvault.trail.audit import AuditTrail

    monkeypatch.setattr(integrity.sealer, "SEAL_STEP", 3)
    master_key = load_master_key(settings.crypto, settings.store.data_dir)
    trail = AuditTrail(any_store, master_key)
    for i in range(4):
        trail.record_event("admin.test", "cli:test", {"n": i})
    first = Sealer(any_store, master_key, settings.audit)
    assert first.seal().sealed == 4
    for i in range(4, 12):
        trail.record_event("admin.test", "cli:test", {"n": i})
    real_assign = integrity.sealer.q.SealAssigner.__call__
    done: list[int] = []

    def stop_after_one_step(self, conn, rows, seals):
        if done:
            raise RuntimeError("the process died")
        done.append(len(rows))
        return real_assign(self, conn, rows, seals)

    monkeypatch.setattr(integrity.sealer.q.SealAssigner, "__call__", stop_after_one_step)
    with pytest.raises(RuntimeError):
        first.seal()
    monkeypatch.setattr(integrity.sealer.q.SealAssigner, "__call__", real_assign)
    first.release()
    assert seqs_and_sizes(any_store) == ([None] * 5 + list(range(7)), [4])
    report = verify_trail(any_store, master_key, settings.audit)
    assert report.is_intact and report.unsealed == 8 and report.numbered == 3

    # The seal recorded the 8 it was numbering (seqs 4-11); a record carrying seq 12: inserted.
    with any_store.engine.connect() as conn:
        row = dict(
            conn.execute(audit_records.select().where(audit_records.c.seq == 6)).one()._mapping
        )
    row.update(id="0190aaaa-0000-7000-8000-000000000000", seq=12)
    with any_store.engine.begin() as conn:
        conn.execute(audit_records.insert().values(**row))
    report = verify_trail(any_store, master_key, settings.audit)
    assert [(f.kind, f.seq) for f in report.findings] == [("inserted", 12)]
    with any_store.engine.begin() as conn:
        conn.execute(audit_records.delete().where(audit_records.c.id == row["id"]))

    # Another process takes the lease over and seals everything, the numbered ones included.
    later = Sealer(any_store, master_key, settings.audit)
    assert later.seal().sealed == 5  # those not numbered; the 3 are unsealed first
    assert later.seal().sealed == 3
    assert seqs_and_sizes(any_store)[0] == list(range(12))
    report = verify_trail(any_store, master_key, settings.audit)
    assert report.is_intact and report.unsealed == 0 and report.numbered == 0


def test_a_record_changed_between_steps_is_sealed_as_stored(any_store, settings, monkeypatch):
    from signalvault.trail import integrity
    from signalvault.trail.audit import AuditTrail

    monkeypatch.setattr(integrity.sealer, "SEAL_STEP", 2)
    master_key = load_master_key(settings.crypto, settings.store.data_dir)
    trail = AuditTrail(any_store, master_key)
    ids = [trail.record_event("admin.test", "cli:test", {"n": i}) for i in range(6)]
    real_assign = integrity.sealer.q.SealAssigner.__call__
    steps: list[int] = []

    def assign_seals(self, conn, rows, seals):
        steps.append(len(rows))
        return real_assign(self, conn, rows, seals)

    calls = []

    def clock() -> float:
        # Called choosing the records, reading them, then as each step's transaction begins:
        # the record changes after two steps were committed.
        calls.append(1)
        if len(calls) == 5:
            with any_store.engine.begin() as other:
                other.execute(
                    text("UPDATE audit_records SET actor = 'cli:other' WHERE id = :id"),
                    {"id": ids[5]},
                )
        return time.time()

    monkeypatch.setattr(integrity.sealer.q.SealAssigner, "__call__", assign_seals)
    assert Sealer(any_store, master_key, settings.audit, clock=clock).seal().sealed == 6
    assert steps == [2, 2, 2, 6]  # the third step found a record changed: all redone, locked
    assert seqs_and_sizes(any_store) == (list(range(6)), [6])
    for record_id in ids:
        row = any_store.get_record(record_id)
        assert row["leaf_hash"] == record_leaf(row)
    assert any_store.get_record(ids[5])["actor"] == "cli:other"
    assert verify_trail(any_store, master_key, settings.audit).is_intact


def test_a_completion_sets_exactly_the_completion_columns(services, monkeypatch):
    """What `complete` writes matches COMPLETE_RECORD's columns: a value it left out would fail
    the statement, one it added would be dropped silently."""
    from signalvault.store.sql import COMPLETE_FIELDS

    written: list = []
    monkeypatch.setattr(services.trail, "_write_later", written.extend)
    services.trail.complete(Interaction(api="chat"), None)
    [op] = written
    assert set(op.params) == {"_id", *COMPLETE_FIELDS}
