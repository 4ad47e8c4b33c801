"""Alerts: a JSON POST to the operator's webhook for blocked secrets or PII, prompt-injection
findings, fail-open guardrail bypasses and failed verifications (SPEC §8).

Delivery never blocks or fails a request: `alert()` puts the event on a bounded queue and returns;
one delivery thread posts it, retrying with backoff. A full queue or an alert that still fails
after its retries is dropped, counted (/metrics) and logged. Payloads carry metadata only: kind,
time, request id, key id, project, rule names, finding types and counts; never content or values.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson

from signalvault import __version__
from signalvault.config import AlertSettings
from signalvault.console import iso
from signalvault.errors import ConfigError
from signalvault.trail.audit import Interaction

log = logging.getLogger("signalvault.alerts")

BACKOFF_SECONDS = 0.5  # first retry delay, doubled after each failed attempt
MAX_DELAY_SECONDS = 30.0
_FOUND = frozenset({"logged", "redacted", "blocked"})
# Guardrail evaluation -> alert kind: (detector or None for any, outcomes that raise it,
# direction or None for both).
_GUARDRAIL_KINDS: tuple[tuple[str, str | None, frozenset[str], str | None], ...] = (
    ("secrets_blocked", "secrets", frozenset({"blocked"}), None),
    ("pii_blocked", "pii", frozenset({"blocked"}), None),
    ("pii_output", "pii", _FOUND, "output"),  # personal data in a response: a possible leak
    ("prompt_injection", "prompt_injection", _FOUND, None),
    ("guardrail_bypass", None, frozenset({"bypassed"}), None),
)
_STOP = object()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET without its body: treat it as a failure."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Alerts:
    def __init__(
        self,
        settings: AlertSettings,
        *,
        on_sent: Callable[[str], None] | None = None,
        on_dropped: Callable[[str], None] | None = None,
        events: Callable[[], tuple[str, ...]] | None = None,
        listener: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """`events`: the alert kinds in force now (a run-time override of `settings.events`);
        without a webhook URL nothing is ever sent, whatever they are. `listener` is told of
        every alert raised, of any kind, sent or not (incidents, wired in the app)."""
        self.listener = listener
        self._url = settings.webhook_url.reveal() if settings.webhook_url is not None else ""
        if self._url and not self._url.startswith(("http://", "https://")):
            raise ConfigError("[alerts] webhook_url must start with http(s)://")
        configured = settings.events
        self._live_events = events or (lambda: configured)
        self._seen_events: tuple[str, ...] | None = None
        self._event_set: frozenset[str] = frozenset()
        secret = settings.signing_secret
        self._signing_key = secret.reveal().encode() if secret is not None else None
        self._timeout = settings.timeout_seconds
        self._retries = settings.retries
        self._queue: queue.Queue[Any] = queue.Queue(settings.queue_size)
        self._on_sent = on_sent
        self._on_dropped = on_dropped
        self._opener = urllib.request.build_opener(_NoRedirect())
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def is_enabled(self) -> bool:
        return bool(self._events())

    def _events(self) -> frozenset[str]:
        """The kinds sent now: none without a webhook URL."""
        if not self._url:
            return frozenset()
        events = self._live_events()
        if events is not self._seen_events:  # rebuilt only when the settings changed
            self._event_set = frozenset(events)
            self._seen_events = events
        return self._event_set

    def alert(
        self,
        kind: str,
        details: dict[str, Any],
        *,
        request_id: str | None = None,
        key_id: str | None = None,
        project: str | None = None,
    ) -> bool:
        """Queue one alert (from any thread); False if its kind is not sent or it was dropped.
        `details` must be metadata only: it is posted as it is."""
        is_sent = kind in self._events()
        if not is_sent and self.listener is None:
            return False
        event = {
            "kind": kind,
            "time": iso(time.time()),
            "request_id": request_id,
            "key_id": key_id,
            "project": project,
            **details,
        }
        if self.listener is not None:
            try:
                self.listener(event)
            except Exception as exc:  # incidents must never fail a request or an alert
                log.error("alert listener failed", extra={"error": type(exc).__name__})
        if not is_sent:
            return False
        return self.send(event)

    def send(self, payload: dict[str, Any]) -> bool:
        """Queue a prepared payload (with a `kind`) for the webhook, whatever the configured
        kinds (incident events); False without a webhook URL or when the queue is full."""
        if not self._url:
            return False
        self._ensure_started()
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            self._drop(str(payload.get("kind")), "queue_full")
            return False
        return True

    def observe(self, interaction: Interaction) -> None:
        """Raise the alerts a finished interaction calls for (the audit trail's observer)."""
        events = self._events()
        if (not events and self.listener is None) or not interaction.evaluations:
            return
        # No kind alerts on a `pass`, the outcome of nearly every evaluation: drop those once
        # here rather than in each kind's scan below.
        flagged = [e for e in interaction.evaluations if e["outcome"] != "pass"]
        if not flagged:
            return
        for kind, detector, outcomes, direction in _GUARDRAIL_KINDS:
            if kind not in events and self.listener is None:
                continue
            matched = [
                e
                for e in flagged
                if e["outcome"] in outcomes
                and (detector is None or e["detector"] == detector)
                and (direction is None or e["direction"] == direction)
            ]
            if matched:
                findings: dict[str, int] = {}
                for evaluation in matched:
                    for finding_type, count in evaluation["kinds"].items():
                        findings[finding_type] = findings.get(finding_type, 0) + count
                key = interaction.key
                self.alert(
                    kind,
                    {
                        "api": interaction.api,
                        "outcome": interaction.outcome,
                        "directions": sorted({e["direction"] for e in matched}),
                        "rules": sorted({e["rule"] for e in matched}),
                        "findings": findings,
                    },
                    request_id=interaction.id,
                    key_id=key.id if key else None,
                    project=key.project if key else None,
                )

    def start(self) -> None:
        self._ensure_started()

    def stop(self, timeout: float | None = None) -> None:
        """Deliver what is queued (one attempt each, no more backoff) for up to `timeout`
        seconds (default: twice the POST timeout); what is left then is dropped and counted."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        # When the queue is full the thread sees `_stopping` after its current alert instead.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_STOP)
        thread.join(self._timeout * 2 if timeout is None else timeout)
        left = 0
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                break
            if event is not _STOP:
                left += 1
                self._drop(str(event.get("kind", "incident")), "shutdown")
        if left:
            log.warning("alerts not delivered at shutdown", extra={"count": left})
        self._thread = None

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._stopping.clear()
                self._thread = threading.Thread(
                    target=self._run, name="signalvault-alerts", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            if self._stopping.is_set():
                try:
                    event = self._queue.get_nowait()
                except queue.Empty:
                    return
            else:
                event = self._queue.get()
            if event is _STOP:
                if self._queue.empty():
                    return
                continue
            self._deliver(event)

    def _deliver(self, event: dict[str, Any]) -> None:
        body = orjson.dumps(event)
        delay = BACKOFF_SECONDS
        reason = ""
        for attempt in range(self._retries + 1):
            try:
                self._post(body)
            except _Retryable as exc:
                reason = exc.reason
                if attempt == self._retries or self._stopping.is_set():
                    break
                wait = min(exc.retry_after or delay, MAX_DELAY_SECONDS)
                if self._stopping.wait(wait):
                    break
                delay *= 2
                continue
            except _Permanent as exc:
                reason = exc.reason
                break
            if self._on_sent is not None:
                self._on_sent(str(event.get("kind", "incident")))
            return
        # The URL may carry a token: it is never logged.
        log.error(
            "alert delivery failed",
            extra={"kind": str(event.get("kind", "incident")), "error": reason},
        )
        self._drop(str(event.get("kind", "incident")), "failed")

    def _post(self, body: bytes) -> None:
        headers = {"content-type": "application/json", "user-agent": f"signalvault/{__version__}"}
        if self._signing_key is not None:
            headers.update(signature_headers(self._signing_key, body, int(time.time())))
        request = urllib.request.Request(  # noqa: S310 (the scheme is checked: http or https)
            self._url, data=body, method="POST", headers=headers
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
            if status == 429 or status >= 500:
                raise _Retryable(f"status {status}", _retry_after(exc)) from None
            raise _Permanent(f"status {status}") from None
        except (urllib.error.URLError, OSError) as exc:  # refused, unreachable, timed out
            raise _Retryable(type(exc).__name__) from None

    def _drop(self, kind: str, reason: str) -> None:
        if reason == "queue_full":
            log.warning("alert dropped: queue full", extra={"kind": kind})
        if self._on_dropped is not None:
            self._on_dropped(reason)


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Permanent(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def signature_headers(key: bytes, body: bytes, timestamp: int) -> dict[str, str]:
    """`x-signalvault-timestamp` and `x-signalvault-signature: sha256=<hex>`, the HMAC-SHA256 of
    `<timestamp>.<body>`: a receiver recomputes it and rejects old timestamps (replays)."""
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(key, signed, hashlib.sha256).hexdigest()
    return {
        "x-signalvault-timestamp": str(timestamp),
        "x-signalvault-signature": f"sha256={digest}",
    }


def _retry_after(error: urllib.error.HTTPError) -> float | None:
    value = error.headers.get("retry-after") if error.headers else None
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
