"""The evidence features a running gateway needs, built once by the app: the classifier the
trail calls, the provider register the proxy routes by, and incidents fed from alerts (with
their webhooks) and from circuit breakers opening in a storm."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from signalvault.config import Settings
from signalvault.evidence.classes import Classifier
from signalvault.evidence.incident_webhooks import payload
from signalvault.evidence.incidents import BreakerStorm, Incident, IncidentBook, IncidentDesk
from signalvault.evidence.register import ProviderRegister
from signalvault.trail.alerts import Alerts
from signalvault.trail.audit import Interaction


class EvidenceHooks:
    def __init__(self, settings: Settings, alerts: Alerts) -> None:
        self.classifier = Classifier(settings.classification)
        self.register = ProviderRegister(settings.providers)
        self._alerts = alerts
        incidents = settings.incidents
        self._format = incidents.webhook_format
        # Incident events go to a URL of their own (opt-in: an alert receiver never gets a shape
        # it did not ask for), signed with the alerts' signing secret.
        self._sender: Alerts | None = None
        if incidents.webhook_url is not None:
            self._sender = Alerts(
                dataclasses.replace(settings.alerts, webhook_url=incidents.webhook_url)
            )
        self.storm = BreakerStorm(incidents, self._storm)
        self.desk: IncidentDesk | None = None

    def attach(self, book: IncidentBook) -> IncidentDesk:
        """Feed alerts into incidents recorded in `book` (once the store is open)."""
        book.notify = self.notify
        book.alert = self._alerts.alert
        self.desk = IncidentDesk(book)
        self._alerts.listener = self.desk.take
        return self.desk

    def notify(self, event: str, incident: Incident) -> None:
        if self._sender is not None:
            self._sender.send(payload(self._format, event, incident))

    def observe(self, interaction: Interaction) -> None:
        """A finished interaction: a `classified_data` alert when its class calls for one."""
        if self.classifier.alerts_for(interaction.classification):
            key = interaction.key
            details: dict[str, Any] = {
                "api": interaction.api,
                "outcome": interaction.outcome,
                "classification": interaction.classification,
            }
            self._alerts.alert(
                "classified_data",
                details,
                request_id=interaction.id,
                key_id=key.id if key else None,
                project=key.project if key else None,
            )

    def _storm(self, breakers: list[str]) -> None:
        self._alerts.alert("breaker_storm", {"providers": breakers})

    def stop(self) -> None:
        if self.desk is not None:
            self.desk.stop()
        if self._sender is not None:
            self._sender.stop()


@contextlib.contextmanager
def delivering(settings: Settings, book: IncidentBook) -> Iterator[IncidentBook]:
    """For one CLI command: incident events and alerts go to the webhooks as in a running
    gateway (an alert raised becomes an incident at once), delivered before the command ends."""

    def note(event: dict[str, Any]) -> None:
        book.note(event)

    alerts = Alerts(settings.alerts, listener=note)
    hooks = EvidenceHooks(settings, alerts)
    book.notify = hooks.notify
    book.alert = alerts.alert
    try:
        yield book
    finally:
        book.notify = None
        book.alert = None
        hooks.stop()
        alerts.stop()
