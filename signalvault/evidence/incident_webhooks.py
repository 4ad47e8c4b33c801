"""Incident events as webhook bodies: a generic JSON shape, and the shape chat tools accept
(Slack-style Block Kit: `text` plus `blocks`). Metadata only, as the incident holds it."""

from __future__ import annotations

from typing import Any

from signalvault.evidence.incidents import Incident


def _escape(text: str) -> str:
    """Slack's three control characters: names and notes must not ping channels or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_EMOJI = {"low": ":information_source:", "medium": ":warning:", "high": ":rotating_light:"}


def generic(event: str, incident: Incident) -> dict[str, Any]:
    return {"kind": "incident", "event": event, "incident": incident.as_json()}


def slack(event: str, incident: Incident) -> dict[str, Any]:
    """Block Kit message: a header, the facts as fields, and the note when there is one."""
    mark = _EMOJI.get(incident.severity, ":fire:")
    title = f"{mark} Incident {event}: {incident.kind} ({incident.severity})"
    fields = [
        ("Scope", incident.scope),
        ("Status", incident.status),
        ("Alerts", str(incident.count)),
        ("First seen", incident.as_json()["first_seen"]),
        ("Last seen", incident.as_json()["last_seen"]),
        ("Incident", incident.id),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{name}*\n{_escape(value)}"} for name, value in fields
            ],
        },
    ]
    note = incident.resolution_note if event == "resolved" else incident.ack_note
    who = incident.resolved_by if event == "resolved" else incident.acknowledged_by
    if note or who:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": _escape(f"{who or ''}: {note or ''}")[:3000]}
                ],
            }
        )
    return {"kind": "incident", "text": title, "blocks": blocks}


SHAPES = {"generic": generic, "slack": slack}


def payload(fmt: str, event: str, incident: Incident) -> dict[str, Any]:
    return SHAPES[fmt](event, incident)
