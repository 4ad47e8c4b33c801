"""`signalvault export`, `export verify` and `subject export` over a trail made by a real
in-process gateway: round trips, filters, content only on request (and then audited), signed
manifests that catch tampering, and no file left behind on failure."""

from __future__ import annotations

import asyncio
import base64
import csv
import time

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import update

from signalvault.cli.main import cli
from signalvault.config import Settings, StoreSettings
from signalvault.control.services import open_services
from signalvault.crypto.envelope import load_master_key
from signalvault.store import RecordFilter
from signalvault.store.schema import audit_records, data_keys
from signalvault.trail.export.manifest import canonical
from signalvault.trail.export.query import parse_moment
from signalvault.trail.export.record import MetadataRenderer, stored_metadata
from signalvault.trail.record_json import record_json
from signalvault.trail.signing import load_signer, public_key_id, verify_signature
from tests.conftest import make_settings, running_gateway

CANARY = "canary-9d2e71-plaintext"
REPLY_CANARY = "reply-canary-4b1f0c"
AWS_KEY = "AKIA" + "Q3VZ7TXK2MBN4PLD"
FORMULA_USER = '=HYPERLINK("http://x.test")'
BOOLS = {"stream", "has_content", "tokens_estimated", "content_erased"}
NUMBERS = {
    "tool_calls",
    "status_code",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "latency_ms",
    "ttfb_ms",
    "policy_version",
    "seq",
}
NESTED = {"guardrails", "details", "attempts", "events"}


def set_columns(services, record_id: str, **values) -> None:
    """Change a stored record behind the gateway's back (damage it, or put it right again)."""
    with services.store.engine.begin() as conn:
        conn.execute(update(audit_records).where(audit_records.c.id == record_id).values(**values))


def chat(text: str, model: str = "gpt-4o-mini", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


async def populate(settings: Settings) -> dict[str, str]:
    """Varied records: ok, blocked, rejected, streamed, Anthropic, two projects, users, an event,
    and one user whose data key was destroyed (erased)."""
    async with running_gateway(settings) as (app, c, key):
        _, beta = app.services.keyring.create(name="b", environment="prod", project="beta")

        def auth(secret: str, user: str | None = None) -> dict:
            headers = {"Authorization": f"Bearer {secret}"}
            return {**headers, "X-SignalVault-User": user} if user else headers

        prompt = f"{CANARY} [[mock:reply={REPLY_CANARY}]]"
        ok = await c.post("/v1/chat/completions", json=chat(prompt), headers=auth(key, "alice"))
        assert ok.status_code == 200
        blocked = await c.post(
            "/v1/chat/completions", json=chat(f"use {AWS_KEY}"), headers=auth(key, "bob")
        )
        assert blocked.status_code == 400
        rejected = await c.post(
            "/v1/chat/completions",
            content=b"{not json",
            headers={**auth(key, "bob"), "Content-Type": "application/json"},
        )
        assert rejected.status_code == 400
        body = chat("stream please", model="gpt-4o", stream=True)
        async with c.stream(
            "POST", "/v1/chat/completions", json=body, headers=auth(key, "alice")
        ) as r:
            await r.aread()
        anthropic = {
            "model": "claude-haiku-4-5",
            "max_tokens": 20,
            "messages": [{"role": "user", "content": "hello"}],
        }
        assert (
            await c.post("/v1/messages", json=anthropic, headers=auth(beta, "carol"))
        ).is_success
        assert (
            await c.post("/v1/chat/completions", json=chat("hi"), headers=auth(beta, FORMULA_USER))
        ).is_success
        assert (
            await c.post("/v1/chat/completions", json=chat("gone"), headers=auth(key, "dave"))
        ).is_success
        assert (
            await c.post("/v1/chat/completions", json=chat(CANARY), headers=auth(key, "erin"))
        ).is_success
        app.services.trail.record_event("admin_action", "cli:test", {"what": "x"}, project="beta")
        app.services.store.flush()
        with app.services.store.engine.begin() as conn:  # erasure: dave's data key destroyed
            conn.execute(
                update(data_keys)
                .where(data_keys.c.subject == "dave")
                .values(wrapped=None, destroyed_at=time.time())
            )
        return {"beta_key_id": app.services.store.list_keys("sv-prod-")[0].id}


@pytest.fixture(scope="module")
def trail(tmp_path_factory, mock_provider):
    """One populated data directory for the module (exports only read it, or append events)."""
    root = tmp_path_factory.mktemp("trail")
    settings = make_settings(root, mock_provider[1])
    info = asyncio.run(populate(settings))
    return {"data_dir": settings.store.data_dir, **info}


@pytest.fixture
def run(trail, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"SIGNALVAULT_DATA_DIR": str(trail["data_dir"]), "SIGNALVAULT_CONFIG": ""}

    def invoke(*args: str):
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def services(trail):
    opened = open_services(Settings(store=StoreSettings(data_dir=trail["data_dir"])))
    yield opened
    opened.store.close()


def stored(services) -> list[dict]:
    """Every record as stored, oldest id first."""
    return sorted(services.store.list_records(RecordFilter(), 100_000), key=lambda r: r["id"])


def read_jsonl(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def from_cell(name: str, cell: str):
    if cell == "":
        return None
    if name in BOOLS:
        return {"true": True, "false": False}[cell]
    if name in NUMBERS or name in NESTED:
        return orjson.loads(cell)
    return cell[1:] if cell.startswith("'") else cell


def read_csv(path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            {name: from_cell(name, cell) for name, cell in row.items()}
            for row in csv.DictReader(handle)
        ]


def read_any(path, fmt: str) -> list[dict]:
    if fmt == "csv":
        return read_csv(path)
    if fmt == "json":
        return orjson.loads(path.read_bytes())
    return read_jsonl(path)


def export(run, tmp_path, fmt: str = "jsonl", *args: str, name: str = "out"):
    out = tmp_path / f"{name}.{fmt}"
    result = run("export", "--format", fmt, "--out", str(out), *args)
    assert result.exit_code == 0, result.output
    return out, result


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_export_round_trips_to_the_stored_metadata(run, services, tmp_path, fmt):
    rows = stored(services)
    out, result = export(run, tmp_path, fmt)
    exported = read_any(out, fmt)
    expected = [stored_metadata(row) for row in rows]
    if fmt == "csv":  # one header for every kind: fields a kind lacks are empty cells
        expected = [{name: record.get(name) for name in exported[0]} for record in expected]
    assert exported == expected
    for row, record in zip(rows, exported, strict=True):
        assert record_json(row).items() <= record.items()
    kinds = {r["kind"] for r in exported}
    outcomes = {r["outcome"] for r in exported}
    assert {"interaction", "admin_action"} <= kinds
    assert {"ok", "blocked", "rejected"} <= outcomes
    assert any(r["stream"] for r in exported)
    manifest = orjson.loads(out.with_name(out.name + ".manifest.json").read_bytes())
    assert manifest["record_count"] == len(rows) and manifest["format"] == fmt
    assert result.output.strip().startswith(f"exported {len(rows)} records to {out} (sha256 ")
    assert manifest["sha256"] in result.output


def test_csv_escapes_formula_cells_reversibly(run, tmp_path):
    out, _ = export(run, tmp_path, "csv")
    text = out.read_text()
    assert "'=HYPERLINK" in text
    assert not any(cell.startswith("=") for row in csv.reader(text.splitlines()) for cell in row)
    assert FORMULA_USER in {r["end_user"] for r in read_csv(out)}


def matches(row: dict, name: str, value) -> bool:
    if name == "rule":
        evaluations = orjson.loads(row["guardrails"] or "[]")
        return any(e["rule"] == value and e["outcome"] != "pass" for e in evaluations)
    if name == "model":
        return value in (row["model_requested"], row["model_used"])
    if name == "since":
        return row["created_at"] >= value
    if name == "until":
        return row["created_at"] < value
    column = {"project": "project", "key": "key_id", "user": "end_user", "outcome": "outcome"}
    return row[column[name]] == value


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("project", "beta"),
        ("key", "BETA_KEY"),
        ("user", "alice"),
        ("model", "claude-haiku-4-5"),
        ("model", "gpt-4o"),
        ("outcome", "blocked"),
        ("rule", "secrets"),
        ("since", "MIDDLE"),
        ("until", "MIDDLE"),
    ],
)
def test_each_filter_narrows_the_export(run, services, trail, tmp_path, name, value):
    rows = stored(services)
    option = value
    if value == "BETA_KEY":
        value = option = trail["beta_key_id"]
    if value == "MIDDLE":
        option = record_json(rows[len(rows) // 2])["time"]
        value = parse_moment(option)
    expected = [row["id"] for row in rows if matches(row, name, value)]
    assert 0 < len(expected) < len(rows)
    out, _ = export(run, tmp_path, "jsonl", f"--{name}", option)
    assert [r["id"] for r in read_jsonl(out)] == expected
    manifest = orjson.loads(out.with_name(out.name + ".manifest.json").read_bytes())
    assert manifest["filters"] == {name: option}


def test_relative_times_and_combined_filters(run, services, tmp_path):
    rows = stored(services)
    out, _ = export(run, tmp_path, "jsonl", "--since", "1h")
    assert len(read_jsonl(out)) == len(rows)
    out, _ = export(run, tmp_path, "jsonl", "--until", "1h", name="none")
    assert out.read_bytes() == b""
    out, _ = export(run, tmp_path, "jsonl", "--user", "alice", "--model", "gpt-4o", name="both")
    [record] = read_jsonl(out)
    assert record["end_user"] == "alice" and record["stream"]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_export_without_content_holds_no_plaintext_and_is_not_a_content_read(
    run, services, tmp_path, fmt
):
    before = len(services.store.list_records(RecordFilter(), 100_000))
    out, _ = export(run, tmp_path, fmt)
    for path in (out, out.with_name(out.name + ".manifest.json")):
        data = path.read_bytes()
        assert CANARY.encode() not in data and REPLY_CANARY.encode() not in data
        assert AWS_KEY.encode() not in data
    assert len(services.store.list_records(RecordFilter(), 100_000)) == before


def test_export_with_content_decrypts_and_is_audited(run, services, tmp_path):
    out, result = export(run, tmp_path, "jsonl", "--include-content", "--user", "alice", name="c")
    records = read_jsonl(out)
    first = records[0]
    assert CANARY in first["prompt"] and REPLY_CANARY in first["response"]
    assert first["content_erased"] is False
    manifest = orjson.loads(out.with_name(out.name + ".manifest.json").read_bytes())
    assert manifest["include_content"] is True
    assert f"content read recorded as {manifest['audit_record_id']}" in result.output
    event = services.store.get_record(manifest["audit_record_id"])
    assert event["kind"] == "content_export" and event["actor"].startswith("cli:")
    details = orjson.loads(event["details"])
    assert details["record_count"] == len(records) == manifest["record_count"]
    assert details["sha256"] == manifest["sha256"]
    assert details["filters"] == {"user": "alice"} and details["include_content"] is True
    assert CANARY not in event["details"]


def test_erased_content_is_null_and_says_so(run, tmp_path):
    out, _ = export(run, tmp_path, "json", "--include-content", "--user", "dave")
    [record] = orjson.loads(out.read_bytes())
    assert record["has_content"] is True
    assert record["prompt"] is None and record["response"] is None
    assert record["content_erased"] is True


def test_manifest_is_signed_by_the_deployment_key(run, services, trail, tmp_path):
    out, _ = export(run, tmp_path, "csv", "--project", "beta")
    manifest = orjson.loads(out.with_name(out.name + ".manifest.json").read_bytes())
    for field in ("generated_at", "generator", "time_range", "policy_versions", "size_bytes"):
        assert field in manifest
    assert manifest["include_content"] is False and manifest["policy_versions"] == [1]
    key = manifest["signing_key"]
    public = base64.b64decode(key["public_key"])
    assert verify_signature(public, base64.b64decode(manifest["signature"]), canonical(manifest))
    master_key = load_master_key(Settings().crypto, trail["data_dir"])
    assert key["id"] == public_key_id(public) == load_signer(services.store, master_key).key_id
    config = tmp_path / "sv.toml"
    config.write_text(f'[store]\ndata_dir = "{trail["data_dir"]}"\n')
    result = run("export", "verify", str(out), "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "ok    deployment key" in result.output and "verified" in result.output
    plain = run("export", "verify", str(out))
    assert plain.exit_code == 0 and "deployment key: not checked" in plain.output


def tamper_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def delete_line(path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    del lines[2]
    path.write_bytes(b"".join(lines))


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
@pytest.mark.parametrize(
    ("tamper", "says"),
    [(tamper_byte, ["FAIL  sha256"]), (delete_line, ["FAIL  sha256", "FAIL  count"])],
)
def test_verify_catches_a_tampered_file(run, tmp_path, fmt, tamper, says):
    out, _ = export(run, tmp_path, fmt)
    assert run("export", "verify", str(out)).exit_code == 0
    tamper(out)
    result = run("export", "verify", str(out))
    assert result.exit_code == 1
    assert "ok    signature" in result.output
    for fragment in says:
        assert fragment in result.output
    assert "does not verify" in result.output


def edit_manifest(path, change) -> None:
    manifest = orjson.loads(path.read_bytes())
    change(manifest)
    path.write_bytes(orjson.dumps(manifest))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            lambda m: m.update(record_count=m["record_count"] - 1),
            ["FAIL  signature", "FAIL  count"],
        ),
        (
            lambda m: m.update(signature=base64.b64encode(b"\0" * 64).decode()),
            ["FAIL  signature"],
        ),
        (lambda m: m.update(filters={"user": "someone-else"}), ["FAIL  signature"]),
    ],
)
def test_verify_catches_a_tampered_manifest(run, tmp_path, change, says):
    out, _ = export(run, tmp_path, "jsonl")
    edit_manifest(out.with_name(out.name + ".manifest.json"), change)
    result = run("export", "verify", str(out))
    assert result.exit_code == 1
    for fragment in says:
        assert fragment in result.output


def test_verify_without_a_manifest_is_a_one_line_error(run, tmp_path):
    lonely = tmp_path / "x.jsonl"
    lonely.write_text("{}\n")
    result = run("export", "verify", str(lonely))
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "manifest" in result.output


@pytest.mark.parametrize(
    ("args", "exit_code", "says"),
    [
        (["--format", "xml"], 2, "Invalid value for '--format'"),
        (["--format", "csv", "--since", "last tuesday"], 1, "not a time"),
        (["--format", "csv", "--since", "1d", "--until", "2d"], 1, "earlier than --until"),
        (["--format", "csv", "--out", "missing-dir/out.csv"], 1, "does not exist"),
        (["--format", "csv", "--out", "."], 2, "is a directory"),
        (["--out", "out.csv"], 2, "--format"),
    ],
)
def test_bad_input_is_refused_and_leaves_no_file(run, tmp_path, args, exit_code, says):
    if "--out" not in args:
        args = [*args, "--out", "out.csv"]
    result = run("export", *args)
    assert result.exit_code == exit_code and "Traceback" not in result.output
    assert says in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_undecryptable_content_stops_the_export_and_leaves_nothing(run, services, tmp_path):
    """Altered ciphertext under a live key is not `erased`: the export fails, naming the record."""
    row = next(r for r in stored(services) if r["end_user"] == "carol")
    set_columns(services, row["id"], prompt_ct=b"\0" + row["prompt_ct"][1:])
    try:
        result = run("export", "--format", "jsonl", "--include-content", "--out", "c.jsonl")
        assert result.exit_code == 1
        assert row["id"] in result.output and "does not decrypt" in result.output
        assert list(tmp_path.iterdir()) == []
    finally:
        set_columns(services, row["id"], prompt_ct=row["prompt_ct"])


def test_damaged_stored_json_stops_the_export_and_leaves_nothing(run, services, tmp_path):
    row = next(r for r in stored(services) if r["outcome"] == "blocked")
    set_columns(services, row["id"], guardrails=row["guardrails"][:-3])
    try:
        result = run("export", "--format", "csv", "--out", "d.csv")
        assert result.exit_code == 1 and result.output.count("\n") == 1
        assert row["id"] in result.output and "damaged" in result.output
        assert list(tmp_path.iterdir()) == []
    finally:
        set_columns(services, row["id"], guardrails=row["guardrails"])


def test_stored_json_check_refuses_exactly_what_parsing_refuses(services):
    """The metadata export checks stored JSON without parsing it into objects, then passes the
    text through: on damaged variants of stored texts it must refuse what orjson refuses (or
    the file could hold broken JSON) and accept what it accepts."""
    import random

    from signalvault.trail.export.batch import is_well_formed

    texts = [r["guardrails"] for r in stored(services) if r.get("guardrails")][:5]
    texts += ['{"a":[1,-2.5e-3,{"b":null}],"c":"\\u00e9\\n\\"","d":true,"e":false}', "[]", '""']
    alphabet = '[]{}",:\\ .-+eE0123456789tfnulrax\n\t\x00\x1f\u00e9'
    rng = random.Random(16)
    verdicts = {True: 0, False: 0}
    for _ in range(20_000):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 3)):
            at, char = rng.randrange(len(text) + 1), rng.choice(alphabet)
            text = rng.choice((text[:at] + char + text[at:], text[:at] + text[at + 1 :]))
        try:
            orjson.loads(text)
            parses = True
        except orjson.JSONDecodeError:
            parses = False
        assert is_well_formed(text) == parses, text
        verdicts[parses] += 1
    assert min(verdicts.values()) > 2_000  # both kinds of text were tried


@pytest.mark.parametrize("stored_as", ["pretty text", "bytes"])
def test_stored_json_with_line_breaks_or_as_bytes_is_rendered_again(
    run, services, tmp_path, stored_as
):
    """Pretty-printed stored JSON (never written by the gateway) is rendered again, as the
    reference does, rather than passed through across lines of a JSON Lines file; so is JSON
    stored as a BLOB, which only a hand-edited store holds."""
    row = next(r for r in stored(services) if r["outcome"] == "blocked")
    value: str | bytes = orjson.dumps(  # pretty-printed
        orjson.loads(row["guardrails"]), option=orjson.OPT_INDENT_2
    ).decode()
    if stored_as == "bytes":
        value = row["guardrails"].encode()
    with services.store.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE audit_records SET guardrails = ? WHERE id = ?", (value, row["id"])
        )
        kind = conn.exec_driver_sql(
            "SELECT typeof(guardrails) FROM audit_records WHERE id = ?", (row["id"],)
        ).scalar()
        assert kind == ("blob" if stored_as == "bytes" else "text")
    try:
        out, _ = export(run, tmp_path, "jsonl")
        lines = out.read_bytes().splitlines()
        assert len(lines) == len(stored(services))
        [line] = [line for line in lines if row["id"].encode() in line]
        assert line == orjson.dumps(stored_metadata({**row, "guardrails": value}))
        out, _ = export(run, tmp_path, "csv")
        [record] = [r for r in read_csv(out) if r["id"] == row["id"]]
        assert record["guardrails"] == orjson.loads(row["guardrails"])
    finally:
        set_columns(services, row["id"], guardrails=row["guardrails"])


def test_export_starts_no_wal_checkpointer_thread(run, tmp_path, monkeypatch):
    """The export command stays single-threaded while it reads (glibc's cheaper lock paths)."""
    from signalvault.store.wal import WalCheckpointer

    def refuse(self):
        raise AssertionError("the export started a checkpointer thread")

    monkeypatch.setattr(WalCheckpointer, "start", refuse)
    export(run, tmp_path, "jsonl")
    export(run, tmp_path, "jsonl", "--include-content", name="with-content")


def test_export_options_do_not_mix_with_verify(run, tmp_path):
    result = run("export", "--format", "csv", "verify", "x.csv")
    assert result.exit_code == 2 and "do not apply to `verify`" in result.output
    helped = run("export", "--help")
    assert "export verify" in helped.output and "--include-content" in helped.output


def test_subject_export_holds_only_that_users_data(run, services, tmp_path):
    expected = [r["id"] for r in stored(services) if r["end_user"] == "alice"]
    out = tmp_path / "alice.jsonl"
    result = run("subject", "export", "--user", "alice", "--out", str(out))
    assert result.exit_code == 0, result.output
    records = read_jsonl(out)
    assert [r["id"] for r in records] == expected and len(expected) >= 2
    assert {r["end_user"] for r in records} == {"alice"}
    assert any(CANARY in (r["prompt"] or "") for r in records)
    data = out.read_bytes()
    assert b"carol" not in data and b"bob" not in data and b"dave" not in data
    manifest = orjson.loads(out.with_name(out.name + ".manifest.json").read_bytes())
    assert manifest["kind"] == "subject_export" and manifest["subject"]["user"] == "alice"
    [data_key] = manifest["subject"]["data_keys"]
    assert data_key["status"] == "live" and data_key["id"].startswith("dk_")
    assert {
        r["data_key_id"] for r in services.store.list_records(RecordFilter(end_user="alice"))
    } >= {data_key["id"]}
    event = services.store.get_record(manifest["audit_record_id"])
    assert event["kind"] == "subject_export" and event["end_user"] == "alice"
    assert run("export", "verify", str(out)).exit_code == 0


def test_subject_export_lists_destroyed_keys(run, tmp_path):
    out = tmp_path / "dave.json"
    result = run("subject", "export", "--user", "dave", "--out", str(out), "--format", "json")
    assert result.exit_code == 0, result.output
    manifest = orjson.loads(out.with_name(out.name + ".manifest.json").read_bytes())
    assert [k["status"] for k in manifest["subject"]["data_keys"]] == ["destroyed"]
    assert all(r["content_erased"] for r in orjson.loads(out.read_bytes()) if r["has_content"])


def test_fast_renderer_matches_the_reference_exactly(services):
    """The export's renderer must give stored_metadata()'s dict, key order included."""
    render = MetadataRenderer()
    assert render.is_exact
    for row in stored(services):
        assert list(render(row).items()) == list(stored_metadata(row).items())


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_batch_renderer_encodes_exactly_as_the_reference(services, fmt):
    """The metadata export passes stored JSON through instead of parsing it: the file's bytes
    must be those the reference rendering gives, for every kind of record."""
    from signalvault.trail.export.batch import BatchRenderer
    from signalvault.trail.export.formats import encoder
    from signalvault.trail.export.query import ExportFilter, iter_batches

    [(names, rows)] = list(iter_batches(services.store, ExportFilter(), with_content=False))
    fast = BatchRenderer(names, fmt)
    assert fast.is_exact
    reference = [stored_metadata(dict(zip(names, row, strict=True))) for row in rows]
    assert encoder(fmt, False).encode(fast.render(rows)) == encoder(fmt, False).encode(reference)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_batches_page_through_every_record_on_both_backends(request, tmp_path, backend):
    """The export's query is compiled once and run again per batch with the next cursor."""
    from signalvault.config import Secret
    from signalvault.trail.export.batch import BatchRenderer
    from signalvault.trail.export.formats import encoder
    from signalvault.trail.export.query import ExportFilter, iter_batches

    url = Secret(request.getfixturevalue("pg_url")) if backend == "postgres" else None
    settings = Settings(store=StoreSettings(data_dir=tmp_path / "data", database_url=url))
    opened = open_services(settings)
    try:
        for n in range(7):
            opened.trail.record_event("admin_action", "cli:test", {"n": n}, project=f"p{n % 2}")
        opened.store.flush()
        rows = stored(opened)
        batches = list(iter_batches(opened.store, ExportFilter(), with_content=False, batch=2))
        assert [len(b) for _, b in batches] == [2, 2, 2, 1]
        names = batches[0][0]
        got = [dict(zip(names, r, strict=True)) for _, b in batches for r in b]
        assert [r["id"] for r in got] == [r["id"] for r in rows]
        fast = BatchRenderer(names, "jsonl")
        assert fast.is_exact
        assert encoder("jsonl", False).encode(fast.render([r for _, b in batches for r in b])) == (
            encoder("jsonl", False).encode([stored_metadata(r) for r in got])
        )
        only = list(iter_batches(opened.store, ExportFilter(project="p1"), with_content=False))
        assert [r[names.index("project")] for _, b in only for r in b] == ["p1"] * 3
    finally:
        opened.store.close()


def test_fast_iso_matches_console_iso():
    import random

    from signalvault.console import iso

    render = MetadataRenderer()
    rng = random.Random(5)
    edges = [0.0, 0.0005, 0.0004999, 0.9999995, 0.9999994, 1764115199.9999996, 1764115200.0015]
    epochs = edges + [rng.uniform(0, 4e9) for _ in range(20_000)]
    epochs += [round(rng.uniform(1.7e9, 1.8e9), rng.randint(0, 7)) for _ in range(20_000)]
    assert [render.iso(e) for e in epochs] == [iso(e) for e in epochs]


def test_a_key_destroyed_during_an_export_is_erased_from_the_next_batch(services):
    """Opened data keys are reused across batches only while the store says they are live."""
    from signalvault.trail.export.content import ContentReader

    [row] = [r for r in stored(services) if r["end_user"] == "erin"]
    reader = ContentReader(services.store, services.trail)
    [first] = reader.read([row])
    assert CANARY in first["prompt"] and first["content_erased"] is False
    with services.store.engine.begin() as conn:
        conn.execute(
            update(data_keys)
            .where(data_keys.c.id == row["data_key_id"])
            .values(wrapped=None, destroyed_at=time.time())
        )
    assert reader.read([row]) == [
        {"prompt": None, "response": None, "content_erased": True, "content_withheld": False}
    ]


@pytest.mark.parametrize("columns", [1, 2, 7])
def test_csv_encoder_writes_what_the_csv_module_writes(columns):
    """The CSV encoder quotes cells itself (faster): byte for byte what csv.writer writes."""
    import io
    import random

    from signalvault.trail.export.formats import CsvEncoder, csv_cell

    rng = random.Random(columns)
    alphabet = "ab ,\"\r\n'=+-@\t\u00e9\u2028x"

    def value():
        return rng.choice(
            [
                None,
                "",
                "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))),
                rng.choice([True, False]),
                rng.randint(-(10**12), 10**12),
                rng.choice([0.1, -2.5, 1e20, 1e-7, 12.34, rng.uniform(-1e6, 1e6)]),
                [{"rule": "pii", "outcome": '"x",y'}],
                {"a": "\n"},
            ]
        )

    names = [f"c{i}" for i in range(columns)]
    records = [{n: value() for n in names} for _ in range(3_000)]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([csv_cell(r.get(n)) for n in names] for r in records)
    encoder = CsvEncoder(names)
    assert encoder.encode(records) == buffer.getvalue().encode()
    assert encoder.encode([]) == b""


def test_csv_cells_beyond_the_csv_modules_default_limit_still_count(tmp_path):
    from signalvault.trail.export.formats import CsvEncoder, count_records

    encoder = CsvEncoder(("id", "prompt"))
    path = tmp_path / "big.csv"
    big = {"id": "r1", "prompt": "x" * 300_000 + "\n=tail"}
    path.write_bytes(encoder.header() + encoder.encode([big, {"id": "r2", "prompt": None}]))
    assert count_records(path, "csv") == 2
    previous = csv.field_size_limit(1 << 20)
    try:
        assert read_csv(path) == [big, {"id": "r2", "prompt": None}]
    finally:
        csv.field_size_limit(previous)
