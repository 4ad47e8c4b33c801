"""Long jobs a page starts (a whole-trail verification): run in a thread, their progress read by
the page while they run. Jobs live in the process that started them and belong to the account
that started them; a finished job is kept for an hour."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from signalvault.errors import HTTPError

log = logging.getLogger("signalvault.dashboard")
KEEP_SECONDS = 3600.0
MAX_JOBS = 100
Progress = Callable[[int, int], None]


@dataclass(slots=True)
class Job:
    id: str
    account_id: str
    kind: str
    started_at: float
    done: int = 0
    total: int = 0
    result: Any = None
    error: str | None = None
    finished_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def progress(self, done: int, total: int) -> None:
        with self.lock:
            self.done, self.total = done, total

    @property
    def is_finished(self) -> bool:
        return self.finished_at is not None

    @property
    def percent(self) -> int | None:
        """How far, when the job knows its total."""
        if self.is_finished:
            return 100
        return None if not self.total else min(99, int(100 * self.done / self.total))


class Jobs:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, account_id: str, kind: str, work: Callable[[Progress], Any]) -> Job:
        """Run `work(progress)` in a thread; its return value becomes the job's result."""
        job = Job(secrets.token_urlsafe(12), account_id, kind, time.time())
        with self._lock:
            self._prune()
            self._jobs[job.id] = job
        threading.Thread(target=self._run, args=(job, work), daemon=True).start()
        return job

    def get(self, job_id: str, account_id: str) -> Job | None:
        """A job of this account (another account's job is not found)."""
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.account_id == account_id else None

    def _run(self, job: Job, work: Callable[[Progress], Any]) -> None:
        try:
            job.result = work(job.progress)
        except HTTPError as refused:
            job.error = refused.message
        except Exception as exc:  # the page shows that it failed; the log says why
            log.error("dashboard job %s failed: %s", job.kind, type(exc).__name__)
            job.error = "the job failed; see the gateway's log"
        finally:
            job.finished_at = time.time()

    def _prune(self) -> None:
        now = time.time()
        for job_id, job in list(self._jobs.items()):
            if job.finished_at is not None and now - job.finished_at > KEEP_SECONDS:
                del self._jobs[job_id]
        while len(self._jobs) >= MAX_JOBS:
            del self._jobs[next(iter(self._jobs))]
