"""The report as one self-contained HTML file: inline CSS and inline SVG, no script, no external
asset, every value escaped (Jinja2 autoescaping). Rendered from the signed report dict."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, StrictUndefined

from signalvault.evidence.report.charts import findings_chart, flow_diagram, traffic_chart
from signalvault.evidence.report.template import TEMPLATE

STATUS_LABELS = {"met": "Met", "gap": "Gap", "not_applicable": "Not applicable"}


def _environment() -> Environment:
    env = Environment(
        autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    env.filters["short"] = lambda value, n=16: str(value)[:n] if value else "—"
    return env


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
