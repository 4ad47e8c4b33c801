"""Dialect options of the schema: PostgreSQL's are given by its backend, so a SQLite gateway does
not load SQLAlchemy's PostgreSQL dialect (~2.5 MiB resident), and PostgreSQL loses no condition."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from signalvault.store.sqlite import SqliteStore


def test_a_sqlite_gateway_does_not_load_the_postgres_dialect(tmp_path):
    """(On a store already migrated, as `keys create` leaves it: alembic's own PostgreSQL
    support loads the dialect while it migrates.)"""
    made = SqliteStore(tmp_path / "signalvault.db")
    made.open()
    made.close()
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import signalvault.app, signalvault.cli, signalvault.server
        from signalvault.store.sqlite import SqliteStore
        store = SqliteStore(Path({str(tmp_path / "signalvault.db")!r}))
        store.open()
        store.close()
        print(sorted(m for m in sys.modules if "postgres" in m or m == "psycopg"))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_postgres_partial_indexes_get_the_sqlite_condition():
    import signalvault.store.postgres  # noqa: F401  (gives the PostgreSQL options)
    from signalvault.store.schema import metadata

    partial = [
        index
        for table in metadata.tables.values()
        for index in table.indexes
        if index.dialect_options["sqlite"]["where"] is not None
    ]
    assert {index.name for index in partial} >= {
        "ix_audit_records_run_id",
        "ix_audit_records_call_id",
        "ix_audit_records_trace_id",
    }
    for index in partial:
        where = index.dialect_options["postgresql"]["where"]
        assert where is index.dialect_options["sqlite"]["where"]
