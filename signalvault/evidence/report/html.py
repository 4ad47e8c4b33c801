"""The report as one self-contained HTML file: inline CSS and inline SVG, no script, no external
asset, every value escaped (Jinja2 autoescaping). Rendered from the signed report dict."""

from __future__ import annotations

from typing import Any

import orjson
from jinja2 import Environment, StrictUndefined
from markupsafe import Markup, escape

from signalvault.evidence.report.charts import findings_chart, flow_diagram, traffic_chart
from signalvault.evidence.report.template import TEMPLATE

STATUS_LABELS = {"met": "Met", "gap": "Gap", "not_applicable": "Not applicable"}


def _environment() -> Environment:
    env = Environment(
        autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    env.filters["short"] = lambda value, n=16: str(value)[:n] if value else "—"
    env.filters["value"] = _value
    env.filters["commands"] = _commands
    return env


def _value(value: Any) -> str:
    """A figure or cell as a person reads it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _commands(text: str) -> Markup:
    """Escaped text with `backquoted` commands and settings set as code."""
    parts = str(escape(text)).split("`")
    html = "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))
    return Markup(html)  # noqa: S704 (every part was escaped above)


def render_html(report: dict[str, Any]) -> str:
    gaps = [
        {"criterion": c["id"], "title": c["title"], **gap}
        for c in report["criteria"]
        for gap in c["gaps"]
    ]
    template = _environment().from_string(TEMPLATE)
    return template.render(
        report=report,
        gaps=gaps,
        labels=STATUS_LABELS,
        traffic=traffic_chart(report["charts"]["traffic"]),
        findings=findings_chart(report["charts"]["findings"]),
        flow=flow_diagram(report["data_flow"]),
    )
