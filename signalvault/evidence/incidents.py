"""Incidents (SPEC §7c): alerts of one kind and scope open an incident or join the one still
unresolved; people acknowledge and resolve it with a note, and the times to do so are measured.

`IncidentBook` is the store side (one transaction per alert; acknowledgements and resolutions,
people's actions, are recorded in the trail); `IncidentDesk` takes alerts off the request path
onto a thread of its own.
"""

from __future__ import annotations

import logging
import queue
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, func, insert, select, update

from signalvault.config import IncidentSettings
from signalvault.console import iso
from signalvault.errors import BadRequest, Conflict, NotFound
from signalvault.store import Store
from signalvault.store.schema import incident_records, incidents
from signalvault.store.sql import connect
from signalvault.trail.audit import AuditTrail

log = logging.getLogger("signalvault.incidents")

OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"
STATUSES = (OPEN, ACKNOWLEDGED, RESOLVED)
# Built-in severity per alert kind; `[incidents] severities` overrides.
SEVERITIES = {
    "secrets_blocked": "high",
    "pii_blocked": "medium",
    "pii_output": "high",
    "prompt_injection": "medium",
    "guardrail_bypass": "high",
    "verification_failed": "critical",
    "classified_data": "low",
    "breaker_storm": "high",
}
# Alert fields kept as the incident's summary: metadata only, as the alert carries it.
SUMMARY_FIELDS = (
    "api",
    "outcome",
    "directions",
    "rules",
    "findings",
    "classification",
    "providers",
    "status",
    "problems",
    "tree_size",
    "first_problem",
)
MAX_NOTE = 2000
Notify = Callable[[str, "Incident"], None]  # (event: opened | acknowledged | resolved, incident)


def scope_of(event: dict[str, Any]) -> str:
    """What an alert is about: the trail, the deployment's providers, or a project."""
    kind = event.get("kind")
    if kind == "verification_failed":
        return "trail"
    if kind == "breaker_storm":
        return "providers"
    return f"project:{event.get('project') or '(none)'}"


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    kind: str
    scope: str
    severity: str
    status: str
    first_seen: float
    last_seen: float
    count: int
    summary: dict[str, Any]
    acknowledged_at: float | None
    acknowledged_by: str | None
    ack_note: str | None
    resolved_at: float | None
    resolved_by: str | None
    resolution_note: str | None
    record_ids: tuple[str, ...] = ()

    @property
    def seconds_to_acknowledge(self) -> float | None:
        done = self.acknowledged_at or self.resolved_at
        return None if done is None else round(done - self.first_seen, 3)

    @property
    def seconds_to_resolve(self) -> float | None:
        return None if self.resolved_at is None else round(self.resolved_at - self.first_seen, 3)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "scope": self.scope,
            "severity": self.severity,
            "status": self.status,
            "first_seen": iso(self.first_seen),
            "last_seen": iso(self.last_seen),
            "count": self.count,
            "summary": self.summary,
            "acknowledged_at": iso(self.acknowledged_at),
            "acknowledged_by": self.acknowledged_by,
            "ack_note": self.ack_note,
            "resolved_at": iso(self.resolved_at),
            "resolved_by": self.resolved_by,
            "resolution_note": self.resolution_note,
            "seconds_to_acknowledge": self.seconds_to_acknowledge,
            "seconds_to_resolve": self.seconds_to_resolve,
            "record_ids": list(self.record_ids),
        }


def _incident(row: Any, record_ids: tuple[str, ...] = ()) -> Incident:
    values = dict(row._mapping)
    values["summary"] = orjson.loads(values["summary"]) if values.get("summary") else {}
    return Incident(**values, record_ids=record_ids)


class IncidentBook:
    """Incidents in the store; every opening, acknowledgement and resolution is in the trail."""

    def __init__(
        self,
        store: Store,
        trail: AuditTrail,
        settings: IncidentSettings,
        notify: Notify | None = None,
    ) -> None:
        self._store = store
        self._trail = trail
        self._severities = {**SEVERITIES, **settings.severities}
        self.notify = notify  # incident webhooks, set by whoever can deliver them
        # Raises an alert (webhook, then back into `note`), where alerts are delivered; without
        # it `raise_alert` notes the incident directly.
        self.alert: Callable[..., bool] | None = None

    def note(self, event: dict[str, Any], now: float | None = None) -> tuple[Incident, bool]:
        """Open an incident for an alert, or join the unresolved one of its kind and scope.
        Returns (incident, whether it was opened)."""
        now = time.time() if now is None else now
        kind, scope = str(event["kind"]), scope_of(event)
        summary = orjson.dumps({k: event[k] for k in SUMMARY_FIELDS if k in event}).decode()
        record_id = event.get("request_id")
        with connect(self._store.engine, write=True) as conn:
            row = conn.execute(
                select(incidents.c.id)
                .where(
                    and_(
                        incidents.c.kind == kind,
                        incidents.c.scope == scope,
                        incidents.c.status != RESOLVED,
                    )
                )
                .order_by(incidents.c.first_seen)
                .limit(1)
            ).first()
            is_new = row is None
            incident_id = str(uuid.uuid4()) if row is None else row.id
            if is_new:
                conn.execute(
                    insert(incidents).values(
                        id=incident_id,
                        kind=kind,
                        scope=scope,
                        severity=self._severities.get(kind, "medium"),
                        status=OPEN,
                        first_seen=now,
                        last_seen=now,
                        count=1,
                        summary=summary,
                    )
                )
            else:
                conn.execute(
                    update(incidents)
                    .where(incidents.c.id == incident_id)
                    .values(last_seen=now, count=incidents.c.count + 1, summary=summary)
                )
            if record_id:
                linked = conn.execute(
                    select(incident_records.c.record_id).where(
                        and_(
                            incident_records.c.incident_id == incident_id,
                            incident_records.c.record_id == record_id,
                        )
                    )
                ).first()
                if linked is None:
                    conn.execute(
                        insert(incident_records).values(
                            incident_id=incident_id, record_id=record_id, at=now
                        )
                    )
        incident = self.get(incident_id)
        if is_new:
            self._tell("opened", incident)
        return incident, is_new

    def get(self, incident_id: str) -> Incident:
        """Raises NotFound."""
        with connect(self._store.engine) as conn:
            row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
            if row is None:
                raise NotFound(f"no incident {incident_id}")
            ids = tuple(
                r.record_id
                for r in conn.execute(
                    select(incident_records.c.record_id)
                    .where(incident_records.c.incident_id == incident_id)
                    .order_by(incident_records.c.at, incident_records.c.record_id)
                )
            )
        return _incident(row, ids)

    def list(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        """Newest first (by first seen); `since`/`until` bound when they were first seen."""
        if status is not None and status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}", param="status")
        query = select(incidents)
        for column, value in ((incidents.c.status, status), (incidents.c.kind, kind)):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(incidents.c.first_seen >= since)
        if until is not None:
            query = query.where(incidents.c.first_seen < until)
        query = query.order_by(incidents.c.first_seen.desc()).limit(limit)
        with connect(self._store.engine) as conn:
            return [_incident(row) for row in conn.execute(query)]

    def count_records(self, incident_id: str) -> int:
        with connect(self._store.engine) as conn:
            return int(
                conn.execute(
                    select(func.count()).where(incident_records.c.incident_id == incident_id)
                ).scalar()
                or 0
            )

    def acknowledge(self, incident_id: str, actor: str, note: str = "") -> Incident:
        """Raises NotFound, Conflict (already acknowledged or resolved)."""
        return self._move(incident_id, actor, note, ACKNOWLEDGED)

    def resolve(self, incident_id: str, actor: str, note: str) -> Incident:
        """Raises NotFound, BadRequest (no note), Conflict (already resolved)."""
        if not note.strip():
            raise BadRequest(
                "resolving an incident needs a note saying what was done", param="note"
            )
        return self._move(incident_id, actor, note, RESOLVED)

    def _move(self, incident_id: str, actor: str, note: str, status: str) -> Incident:
        if len(note) > MAX_NOTE:
            raise BadRequest(f"the note is longer than {MAX_NOTE} characters", param="note")
        before = self.get(incident_id)
        if before.status == RESOLVED or before.status == status:
            raise Conflict(f"incident {incident_id} is already {before.status}")
        now = time.time()
        values: dict[str, Any] = {"status": status}
        if status == ACKNOWLEDGED:
            values.update(acknowledged_at=now, acknowledged_by=actor, ack_note=note or None)
        else:
            values.update(resolved_at=now, resolved_by=actor, resolution_note=note)
        with connect(self._store.engine, write=True) as conn:
            conn.execute(
                update(incidents)
                .where(and_(incidents.c.id == incident_id, incidents.c.status == before.status))
                .values(**values)
            )
        after = self.get(incident_id)
        self._trail.record_event(
            f"incident_{status}",
            actor,
            {
                "incident": incident_id,
                "kind": after.kind,
                "scope": after.scope,
                "before": before.status,
                "after": after.status,
                "note": note or None,
            },
        )
        self._tell(status, after)
        return after

    def _tell(self, event: str, incident: Incident) -> None:
        if self.notify is None:
            return
        try:
            self.notify(event, incident)
        except Exception as exc:  # a webhook must never undo what was recorded
            log.error("incident notification failed", extra={"error": type(exc).__name__})


def raise_alert(book: IncidentBook | None, kind: str, details: dict[str, Any]) -> None:
    """Raise an alert outside the request path (a failed verification): through the alerts when
    this process delivers them, else straight into an incident."""
    if book is None:
        return
    if book.alert is not None:
        book.alert(kind, details)
        return
    book.note({"kind": kind, "time": iso(time.time()), "request_id": None, **details})


def verification_details(report: dict[str, Any]) -> dict[str, Any]:
    """What a `verification_failed` alert says about a verify report (ids and counts only)."""
    findings = report.get("findings") or []
    return {
        "status": report.get("status"),
        "problems": report.get("problems"),
        "tree_size": report.get("tree_size"),
        "first_problem": findings[0]["message"] if findings else None,
    }


def response_times(found: list[Incident]) -> dict[str, Any]:
    """Median and worst time to acknowledge and to resolve, in seconds."""

    def summary(values: list[float]) -> dict[str, Any]:
        if not values:
            return {"count": 0, "median_seconds": None, "max_seconds": None}
        return {
            "count": len(values),
            "median_seconds": round(statistics.median(values), 1),
            "max_seconds": round(max(values), 1),
        }

    acks = [i.seconds_to_acknowledge for i in found if i.seconds_to_acknowledge is not None]
    fixes = [i.seconds_to_resolve for i in found if i.seconds_to_resolve is not None]
    return {"acknowledge": summary(acks), "resolve": summary(fixes)}


_STOP = object()


class IncidentDesk:
    """Takes alerts from the request path (a queue) and notes them in the book on a thread."""

    def __init__(self, book: IncidentBook, queue_size: int = 10_000) -> None:
        self.book = book
        self._queue: queue.Queue[Any] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def take(self, event: dict[str, Any]) -> None:
        """An alert was raised (the alerts' listener): never blocks, never raises."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="signalvault-incidents", daemon=True
                )
                self._thread.start()
        try:
            self._queue.put_nowait(dict(event))
        except queue.Full:
            log.error("incident queue full: an alert was not noted", extra={"kind": event["kind"]})

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            try:
                if event is _STOP:
                    return
                self.book.note(event)
            except Exception as exc:  # the next alert is tried anyway
                log.error("incident not noted", extra={"error": type(exc).__name__})
            finally:
                self._queue.task_done()

    def drain(self) -> None:
        """Wait until every alert taken so far is noted."""
        self._queue.join()

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._queue.put(_STOP)
        thread.join(10)
        self._thread = None


class BreakerStorm:
    """Turns circuit breakers opening into one `breaker_storm` alert when `threshold` open within
    the window (then quiet until the window has passed)."""

    def __init__(
        self,
        settings: IncidentSettings,
        raise_alert: Callable[[list[str]], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = settings.storm_threshold
        self._window = settings.storm_window_seconds
        self._raise = raise_alert
        self._clock = clock
        self._opened: list[tuple[float, str]] = []
        self._quiet_until = 0.0

    def opened(self, name: str) -> None:
        now = self._clock()
        self._opened = [(t, n) for t, n in self._opened if t > now - self._window]
        self._opened.append((now, name))
        if len(self._opened) >= self._threshold and now >= self._quiet_until:
            self._quiet_until = now + self._window
            self._raise(sorted({n for _, n in self._opened}))
