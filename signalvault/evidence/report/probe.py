"""Runs the report's queries and wraps each answer as an evidence item that carries its own
provenance: the SQL with its parameters, the time it ran, the row count, the trail range of the
period and how long the figures stay valid."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select

from signalvault.console import iso
from signalvault.evidence.report.model import Evidence
from signalvault.store import Store
from signalvault.store import seal_queries as q
from signalvault.store.schema import audit_records

_t = audit_records.c


@dataclass(frozen=True, slots=True)
class Period:
    start: float
    end: float

    def as_json(self) -> dict[str, str | None]:
        return {"from": iso(self.start), "to": iso(self.end)}

    def within(self, column: Any = _t.created_at) -> Any:
        return and_(column >= self.start, column < self.end)


class Probe:
    """One report run: the period, the checkpoint in force, and a clock."""

    def __init__(self, store: Store, period: Period, valid_until: float | None) -> None:
        self.store = store
        self.period = period
        self.now = time.time()
        self._valid_until = valid_until
        with store.engine.connect() as conn:
            head = q.last_checkpoint(conn)
            span = conn.execute(
                select(func.min(_t.seq), func.max(_t.seq), func.count(), func.count(_t.seq)).where(
                    period.within()
                )
            ).one()
        self.checkpoint = (
            None
            if head is None
            else {
                "tree_size": int(head.tree_size),
                "root": bytes(head.root_hash).hex(),
                "time": iso(float(head.created_at)),
                "key_id": head.signing_key_id,
            }
        )
        self.records_in_period = int(span[2])
        self.trail_range = {
            "first_seq": span[0],
            "last_seq": span[1],
            "records": int(span[2]),
            "sealed": int(span[3]),
            "unsealed": int(span[2]) - int(span[3]),
            "checkpoint": self.checkpoint,
        }

    def rows(self, title: str, statement: Any, **extra: Any) -> tuple[list[Any], Evidence]:
        """Run a query over the trail; the evidence item names it exactly."""
        compiled = statement.compile(dialect=self.store.engine.dialect)
        with self.store.engine.connect() as conn:
            rows = list(conn.execute(statement))
        params = {name: _plain(value) for name, value in compiled.params.items()}
        evidence = Evidence(
            title=title,
            produced_by={
                "source": "trail",
                "query": " ".join(str(compiled).split()),
                "parameters": params,
                "period": self.period.as_json(),
            },
            generated_at=iso(self.now) or "",
            row_count=len(rows),
            trail_range=self.trail_range,
            valid_until=iso(self._valid_until),
            **extra,
        )
        return rows, evidence

    def configuration(
        self, title: str, source: str, count: int, valid_until: float | None = None, **extra: Any
    ) -> Evidence:
        """Evidence read from the configuration or the store's registers (not the trail)."""
        return Evidence(
            title=title,
            produced_by={"source": "configuration", "query": source, "parameters": {}},
            generated_at=iso(self.now) or "",
            row_count=count,
            trail_range=None,
            valid_until=iso(valid_until),
            **extra,
        )


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value > 1e9:  # an epoch time: give the reader both
        return {"epoch": value, "iso": iso(value)}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    return {"columns": list(columns), "rows": [list(r) for r in rows]}
