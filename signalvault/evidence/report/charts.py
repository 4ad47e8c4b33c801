"""Inline SVG for the HTML report, drawn from the report's data: traffic and findings over time,
and the data-flow diagram. Every label is escaped; no script, no external reference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT = 760, 230
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 40
TRAFFIC = (
    ("ok", "#2f855a", "answered"),
    ("refused", "#d69e2e", "refused"),
    ("error", "#c53030", "failed"),
)
FINDINGS = (
    ("pii", "#2b6cb0", "personal data"),
    ("secrets", "#c53030", "secrets"),
    ("prompt_injection", "#6b46c1", "prompt injection"),
)


def _text(
    x: float, y: float, label: Any, anchor: str = "start", size: int = 11, **attrs: str
) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>'
        f"{escape(str(label))}</text>"
    )


def nice_peak(peak: int) -> int:
    """The axis top: the peak rounded up so the four gridlines fall on whole numbers."""
    return max(4, -(-peak // 4) * 4)


def _frame(title: str, peak: int, buckets: Sequence[dict[str, Any]]) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
    ]
    for step in range(5):
        y = TOP + plot_h - plot_h * step / 4
        value = round(peak * step / 4)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e2e8f0"/>'
        )
        parts.append(_text(LEFT - 6, y + 4, value, "end", fill="#4a5568"))
    if buckets:
        last = len(buckets) - 1
        for index in sorted({0, len(buckets) // 2, last}):
            x = LEFT + (index + 0.5) * (WIDTH - LEFT - RIGHT) / len(buckets)
            anchor = "middle"
            if last and index == 0:
                anchor = "start"
            elif last and index == last:
                anchor = "end"
            label = str(buckets[index]["start"])[:10]
            parts.append(_text(x, HEIGHT - BOTTOM + 16, label, anchor, fill="#4a5568"))
    return parts


def _legend(series: Sequence[tuple[str, str, str]]) -> str:
    parts = []
    x = LEFT
    for _, colour, label in series:
        parts.append(f'<rect x="{x}" y="{HEIGHT - 14}" width="10" height="10" fill="{colour}"/>')
        parts.append(_text(x + 14, HEIGHT - 5, label, fill="#2d3748"))
        x += 24 + 7 * len(label)
    return "".join(parts)


def traffic_chart(buckets: Sequence[dict[str, Any]]) -> Markup:
    """Stacked bars per bucket: answered, refused, failed."""
    peak = nice_peak(max((sum(b[k] for k, _, _ in TRAFFIC) for b in buckets), default=0))
    parts = _frame("Requests over time", peak, buckets)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(buckets))
    for index, bucket in enumerate(buckets):
        y = TOP + plot_h
        for key, colour, label in TRAFFIC:
            h = plot_h * bucket[key] / peak
            if h <= 0:
                continue
            y -= h
            parts.append(
                f'<rect x="{LEFT + index * slot + slot * 0.15:.1f}" y="{y:.1f}" '
                f'width="{slot * 0.7:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{escape(str(bucket['start'])[:10])}: {bucket[key]} {label}</title></rect>"
            )
    parts.append(_legend(TRAFFIC))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (built from escaped parts and numbers)


def findings_chart(buckets: Sequence[dict[str, Any]]) -> Markup:
    """One line per detector: findings per bucket."""
    peak = nice_peak(max((b[k] for b in buckets for k, _, _ in FINDINGS), default=0))
    parts = _frame("Guardrail findings over time", peak, buckets)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(buckets))
    for key, colour, _ in FINDINGS:
        points = [
            (LEFT + (i + 0.5) * slot, TOP + plot_h - plot_h * b[key] / peak)
            for i, b in enumerate(buckets)
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.extend(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>' for x, y in points
        )
    parts.append(_legend(FINDINGS))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (built from escaped parts and numbers)


def _box(
    x: float, y: float, w: float, h: float, lines: Sequence[str], fill: str, stroke: str
) -> str:
    parts = [
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="8" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
    ]
    for i, line in enumerate(lines):
        weight = "600" if i == 0 else "400"
        parts.append(
            _text(
                x + 10,
                y + 18 + i * 15,
                line,
                size=12 if i == 0 else 11,
                font_weight=weight,
                fill="#1a202c",
            )
        )
    return "".join(parts)


def flow_diagram(flow: dict[str, Any]) -> Markup:
    """Applications -> gateway -> providers, with each provider's region, DPA and classes."""
    apps = flow["applications"] or [{"name": "(no keys yet)", "keys": 0}]
    providers = flow["providers"]
    row_h, box_h = 78, 62
    height = 40 + max(len(apps), len(providers), 1) * row_h
    middle = height / 2
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}" role="img" '
        'aria-label="Data flow" class="flow"><title>Data flow</title>',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#4a5568"/>'
        "</marker></defs>",
        _text(20, 22, "Applications (projects)", size=12, font_weight="600", fill="#4a5568"),
        _text(250, 22, "Gateway", size=12, font_weight="600", fill="#4a5568"),
        _text(480, 22, "Providers (processors)", size=12, font_weight="600", fill="#4a5568"),
    ]
    for i, app in enumerate(apps):
        y = 34 + i * row_h
        lines = [str(app["name"]), f"{app['keys']} active key(s)"]
        parts.append(_box(20, y, 170, box_h - 14, lines, "#edf2f7", "#a0aec0"))
        parts.append(_arrow(190, y + 24, 246, middle))
    gateway = ["SignalVault", "guardrails, redaction", "encrypted audit trail"]
    parts.append(_box(250, middle - 45, 150, 90, gateway, "#ebf8ff", "#3182ce"))
    for i, p in enumerate(providers):
        y = 34 + i * row_h
        dpa = f"DPA {p['dpa_reference'] or 'on file'}" if p["dpa"] else "NO DPA on file"
        classes = p["allowed_classes"]
        allowed = "every class" if len(classes) == 4 else ", ".join(classes) or "no class"
        name = p["name"] if p["processor"] == p["name"] else f"{p['name']} ({p['processor']})"
        lines = [name, f"{p['region']} · {dpa}", f"may receive: {allowed}"]
        fill, stroke = ("#f0fff4", "#38a169") if p["dpa"] else ("#fff5f5", "#e53e3e")
        parts.append(_box(480, y, 265, box_h, lines, fill, stroke))
        parts.append(_arrow(400, middle, 476, y + box_h / 2))
        label_y = (middle + y + box_h / 2) / 2 - 6
        parts.append(_text(438, label_y, f"{p['calls']} calls", "middle", size=10, fill="#2d3748"))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (built from escaped parts and numbers)


def _arrow(x1: float, y1: float, x2: float, y2: float) -> str:
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#4a5568" '
        'stroke-width="1.5" marker-end="url(#arrow)"/>'
    )
