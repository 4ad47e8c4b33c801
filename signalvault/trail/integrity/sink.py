"""External copies of signed checkpoints: a JSON-lines file and/or a webhook.

A copy outside the database is what lets `audit verify --trusted-checkpoint` catch a rewrite of
the whole store. The file is appended synchronously by the sealer thread; webhook deliveries run
in their own thread with retries, so a slow receiver never delays sealing or requests.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from signalvault.config import AuditSettings
from signalvault.trail.integrity.checkpoint import Checkpoint

log = logging.getLogger("signalvault.integrity")

WEBHOOK_ATTEMPTS = 5
WEBHOOK_TIMEOUT_SECONDS = 10.0
WEBHOOK_FIRST_BACKOFF_SECONDS = 1.0
_STOP = ""


def append_line(path: Path, line: str) -> None:
    """Append one line durably (O_APPEND: whole lines even with several writers)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class WebhookSender:
    """POSTs checkpoint lines in order from one background thread, retrying with backoff."""

    def __init__(self, url: str, backoff: float = WEBHOOK_FIRST_BACKOFF_SECONDS) -> None:
        self._url = url
        self._backoff = backoff
        self._queue: queue.Queue[str] = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="signalvault-checkpoint-webhook", daemon=True
        )
        self._thread.start()
        self.delivered = 0
        self.failed = 0

    def send(self, line: str) -> None:
        self._queue.put(line)

    def close(self, timeout: float) -> None:
        """Deliver what is queued for up to `timeout` seconds, then stop retrying."""
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._stopping.set()
        self._thread.join(1.0)

    def _run(self) -> None:
        while True:
            line = self._queue.get()
            if line == _STOP:
                return
            self._deliver(line)

    def _deliver(self, line: str) -> None:
        delay = self._backoff
        for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
            try:
                request = urllib.request.Request(  # noqa: S310 (scheme checked: http or https)
                    self._url,
                    data=line.encode(),
                    headers={"Content-Type": "application/json"},
                    method="POST",
                )
                with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS):  # noqa: S310
                    pass
                self.delivered += 1
                return
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = type(exc).__name__
                if isinstance(exc, urllib.error.HTTPError):
                    reason = f"HTTP {exc.code}"
                log.warning(
                    "checkpoint webhook delivery failed (attempt %d of %d): %s",
                    attempt,
                    WEBHOOK_ATTEMPTS,
                    reason,
                )
            if attempt < WEBHOOK_ATTEMPTS and not self._stopping.wait(delay):
                delay *= 2
                continue
            break
        self.failed += 1
        log.error("checkpoint webhook: gave up on one checkpoint (still in the store)")


class CheckpointSinks:
    """Where each new checkpoint is copied, from `[audit] checkpoint_file/checkpoint_webhook`."""

    def __init__(self, settings: AuditSettings) -> None:
        self._file = settings.checkpoint_file
        self._webhook_url = settings.checkpoint_webhook
        self._webhook: WebhookSender | None = None

    def publish(self, checkpoint: Checkpoint) -> None:
        line = checkpoint.json_line()
        if self._file is not None:
            try:
                append_line(self._file, line)
            except OSError as exc:
                # The checkpoint is committed in the store; the next one is appended as usual.
                log.error("cannot append to [audit] checkpoint_file: %s", exc.strerror)
        if self._webhook_url:
            if self._webhook is None:
                self._webhook = WebhookSender(self._webhook_url)
            self._webhook.send(line)

    def close(self, timeout: float = 10.0) -> None:
        if self._webhook is not None:
            started = time.monotonic()
            self._webhook.close(timeout)
            log.debug("checkpoint webhook closed in %.1fs", time.monotonic() - started)
            self._webhook = None
