"""Where the trail's tamper evidence stands: the newest signed checkpoint, the records not yet
sealed, and the last verification someone ran (each run is itself an audit record)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import func, select

from signalvault.console import iso
from signalvault.errors import StoreError
from signalvault.store import RecordFilter, Store
from signalvault.store.schema import audit_records
from signalvault.store.seal_queries import last_checkpoint, recent_checkpoints
from signalvault.store.sql import SqlStore
from signalvault.trail.audit import AuditTrail
from signalvault.trail.integrity.verify import VerifyReport

VERIFIED_EVENT = "audit_verified"


def record_verification(trail: AuditTrail, actor: str, report: VerifyReport, via: str) -> str:
    """Keep a verification's outcome in the trail (counts and status, never record content)."""
    summary = report.as_json()
    details = {
        "via": via,
        "status": summary["status"],
        "tree_size": summary["tree_size"],
        "records_checked": summary["records_checked"],
        "checkpoints_checked": summary["checkpoints_checked"],
        "problems": summary["problems"],
    }
    return trail.record_event(VERIFIED_EVENT, actor, details)


def _sql(store: Store) -> SqlStore:
    if not isinstance(store, SqlStore):
        raise StoreError("integrity status needs an SQL store")
    return store


def integrity_status(store: Store) -> dict[str, Any]:
    """The newest checkpoint, how many records wait for a seal, and the last verification."""
    engine = _sql(store).engine
    t = audit_records.c
    with engine.connect() as conn:
        head = last_checkpoint(conn)
        unsealed = conn.execute(select(func.count()).where(t.seq.is_(None))).scalar()
    last = store.list_records(RecordFilter(kinds=(VERIFIED_EVENT,)), limit=1)
    verification = None
    if last:
        details = orjson.loads(last[0]["details"] or "{}")
        verification = {
            "at": iso(last[0]["created_at"]),
            "by": last[0]["actor"],
            "status": details.get("status"),
            "records_checked": details.get("records_checked"),
        }
    return {
        "last_seal_at": None if head is None else iso(head.created_at),
        "tree_size": 0 if head is None else int(head.tree_size),
        "unsealed": int(unsealed or 0),
        "last_verification": verification,
    }


def checkpoint_page(store: Store, before: int | None, limit: int) -> list[dict[str, Any]]:
    """Signed checkpoints newest first: size, root, time, key and the `prev` link of each."""
    rows = recent_checkpoints(_sql(store).engine, before, limit)
    page = []
    for row in rows:
        try:
            prev = orjson.loads(row.body).get("prev")
        except orjson.JSONDecodeError:
            prev = None  # verification reports an unreadable body; the listing shows none
        page.append(
            {
                "tree_size": int(row.tree_size),
                "root": bytes(row.root_hash).hex(),
                "created_at": iso(row.created_at),
                "signing_key_id": row.signing_key_id,
                "prev": prev,
            }
        )
    return page
