"""Retention: which records have expired (per project, else the global default), and runs that
tombstone them in small batches, optionally archiving them first. Records under a legal hold
stay. Every run, dry or not, is itself recorded in the trail.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from signalvault.config import RetentionSettings
from signalvault.errors import ConfigError
from signalvault.store import Store
from signalvault.store.lifecycle import Cutoffs
from signalvault.trail.audit import AuditTrail
from signalvault.trail.record_json import record_json

EVENT_KIND = "retention_run"
PROJECT_DAYS_SETTING = "retention.projects"  # run-time overrides, JSON {project: days}
# What retention deletes: interactions (the prompts and responses it exists for) and sign-in
# records (email and address; failures an attacker can multiply). Every other kind is evidence of
# how the deployment was run and changed (admin actions, content reads, exports, erasures, runs
# like this one), holds no content and is kept whatever the retention; a new kind is kept unless
# it is added here. Agent events (tool calls and results, MCP calls, ingested spans) hold
# content and expire with the interactions they belong to.
EXPIRING_KINDS = (
    "interaction",
    "tool_call",
    "tool_result",
    "mcp_call",
    "span",
    "login",
    "login_failed",
    "login_locked",
    "logout",
    "password_change_failed",
)
NO_PROJECT = "(none)"
DAY = 86_400.0
LEASE = "retention"

# The stored global default: one value for PUT /api/retention and PATCH /api/settings.
DEFAULT_DAYS_SETTING = "retention.days"


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Days to keep records: a default and per-project overrides (0 keeps forever), and at most
    so many days per data class whatever the project keeps (0: no limit by class)."""

    default_days: int
    projects: Mapping[str, int] = field(default_factory=dict)
    classes: Mapping[str, int] = field(default_factory=dict)

    @property
    def is_active(self) -> bool:
        return (
            self.default_days > 0
            or any(days > 0 for days in self.projects.values())
            or any(days > 0 for days in self.classes.values())
        )

    def cutoffs(self, now: float) -> Cutoffs:
        def cutoff(days: int) -> float | None:
            return now - days * DAY if days > 0 else None

        return Cutoffs(
            default=cutoff(self.default_days),
            projects={name: cutoff(days) for name, days in self.projects.items()},
            expiring_kinds=EXPIRING_KINDS,
            classes={name: cutoff(days) for name, days in self.classes.items()},
        )


def load_policy(store: Store, settings: RetentionSettings) -> RetentionPolicy:
    """The configured policy with run-time overrides (settings table) on top."""
    default = settings.days
    stored_default = store.get_setting(DEFAULT_DAYS_SETTING)
    if stored_default is not None:
        default = int(orjson.loads(stored_default))
    projects = dict(settings.projects)
    stored = store.get_setting(PROJECT_DAYS_SETTING)
    if stored is not None:
        projects.update({str(k): int(v) for k, v in orjson.loads(stored).items()})
    return RetentionPolicy(default, projects, dict(settings.classes))


def set_project_days(
    store: Store, trail: AuditTrail, project: str, days: int | None, actor: str
) -> None:
    """Override a project's retention at run time (None removes the override); audited."""
    if days is not None and days < 0:
        raise ConfigError("retention days must be 0 (keep) or more")
    stored = store.get_setting(PROJECT_DAYS_SETTING)
    overrides: dict[str, int] = orjson.loads(stored) if stored else {}
    if days is None:
        overrides.pop(project, None)
    else:
        overrides[project] = days
    store.put_setting(PROJECT_DAYS_SETTING, orjson.dumps(overrides).decode(), actor)
    trail.record_event(
        "settings", actor, {"setting": PROJECT_DAYS_SETTING, "project": project, "days": days}
    )


def set_default_days(store: Store, trail: AuditTrail, days: int, actor: str) -> None:
    """Override the global default at run time; audited."""
    if days < 0:
        raise ConfigError("retention days must be 0 (keep) or more")
    store.put_setting(DEFAULT_DAYS_SETTING, orjson.dumps(days).decode(), actor)
    trail.record_event("settings", actor, {"setting": DEFAULT_DAYS_SETTING, "days": days})


@dataclass(slots=True)
class RunReport:
    dry_run: bool
    tombstoned: int = 0  # with dry_run: how many would be
    by_project: dict[str, int] = field(default_factory=dict)
    held_back: int = 0
    duration_ms: float = 0.0
    archive: str | None = None
    record_id: str | None = None

    def summary(self) -> str:
        verb = "would tombstone" if self.dry_run else "tombstoned"
        projects = ", ".join(f"{p}: {n}" for p, n in sorted(self.by_project.items()))
        line = f"retention: {verb} {self.tombstoned} record(s)"
        line += f" ({projects})" if projects else ""
        line += f"; {self.held_back} kept under legal hold; {self.duration_ms / 1000:.2f}s"
        return line + (f"; archived to {self.archive}" if self.archive else "")


Progress = Callable[[int, int], None]  # (done, total)


def run_retention(
    store: Store,
    trail: AuditTrail,
    settings: RetentionSettings,
    *,
    actor: str,
    dry_run: bool = False,
    archive_dir: Path | None = None,
    now: float | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunReport:
    """Tombstone every expired record not under a legal hold, `settings.batch_size` at a time.

    Raises:
        StoreError: the store failed; batches already done stay done (and archived).
        ConfigError: the archive cannot be written (nothing of that batch is tombstoned).
    """
    started = time.perf_counter()
    now = time.time() if now is None else now
    cutoffs = load_policy(store, settings).cutoffs(now)
    report = RunReport(dry_run=dry_run)
    counts = store.count_expired(cutoffs)
    report.held_back = sum(held for _, _, held in counts)
    total = sum(free for _, free, _ in counts)
    if dry_run:
        report.tombstoned = total
        report.by_project = {p or NO_PROJECT: n for p, n, _ in counts if n}
    else:
        archive = _archive_path(archive_dir or settings.archive_dir, now)
        while True:
            rows = store.find_expired(cutoffs, settings.batch_size)
            if not rows:
                break
            if archive is not None:
                _append(archive, rows)
                report.archive = str(archive)
            done = _tombstone(store, cutoffs, rows, now, report.by_project)
            report.tombstoned += done
            if progress is not None:
                progress(report.tombstoned, total)
            if done == 0:  # every row of the batch was put under hold meanwhile
                break
            if should_stop is not None and should_stop():
                break
            time.sleep(settings.batch_pause_ms / 1000)
    report.duration_ms = (time.perf_counter() - started) * 1000
    report.record_id = trail.record_event(
        EVENT_KIND,
        actor,
        {
            "dry_run": dry_run,
            "tombstoned": report.tombstoned,
            "by_project": report.by_project,
            "held_back": report.held_back,
            "duration_ms": round(report.duration_ms, 1),
            "archived": report.archive is not None,
        },
    )
    return report


def scheduled_run(
    store: Store,
    trail: AuditTrail,
    settings: RetentionSettings,
    holder: str,
    should_stop: Callable[[], bool],
) -> RunReport | None:
    """One scheduled run, if the policy deletes anything and this process holds the lease.

    The holder keeps renewing its lease, so among several gateway processes one runs retention
    until it stops; another takes over when its lease lapses (two intervals).
    """
    if not load_policy(store, settings).is_active:
        return None
    seconds = settings.interval_seconds * 2
    if not store.acquire_lease(LEASE, holder, seconds):
        return None

    def stop_or_lost_lease() -> bool:  # a long run renews its lease between batches
        return should_stop() or not store.acquire_lease(LEASE, holder, seconds)

    return run_retention(store, trail, settings, actor="scheduler", should_stop=stop_or_lost_lease)


def _tombstone(
    store: Store, cutoffs: Cutoffs, rows: list[dict[str, Any]], now: float, tally: dict[str, int]
) -> int:
    """Tombstone a batch one project at a time, so the tally by project is exact."""
    groups: dict[str | None, list[str]] = {}
    for row in rows:
        groups.setdefault(row["project"], []).append(row["id"])
    done = 0
    for project, ids in groups.items():
        count = store.tombstone_expired(cutoffs, ids, "retention", now)
        if count:
            name = project or NO_PROJECT
            tally[name] = tally.get(name, 0) + count
        done += count
    return done


def _archive_path(directory: Path | None, now: float) -> Path | None:
    if directory is None:
        return None
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot use archive directory {directory}: {exc.strerror}") from None
    day = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%d")
    return directory / f"retention-{day}.jsonl"


def archive_line(row: dict[str, Any]) -> bytes:
    """One archived record: its metadata, and its content as base64 ciphertext (still
    encrypted: readable only while its data key and a master key that wraps it exist)."""
    entry = record_json(row)
    entry["created_at"] = row["created_at"]
    entry["data_key_id"] = row.get("data_key_id")
    for name in ("prompt_ct", "response_ct", "events_ct", "leaf_hash"):
        value = row.get(name)
        entry[name] = base64.b64encode(value).decode() if value is not None else None
    entry["seq"] = row.get("seq")
    return orjson.dumps(entry) + b"\n"


def _append(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append and fsync before anything is tombstoned: a crash never loses an archived row."""
    data = b"".join(archive_line(row) for row in rows)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise ConfigError(f"cannot write archive {path}: {exc.strerror}") from None
