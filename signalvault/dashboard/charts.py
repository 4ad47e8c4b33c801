"""Chart geometry for the overview, drawn by the templates as inline SVG: numbers only (no
markup here), so a chart needs no script, no library and nothing from another origin."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT = 720.0, 200.0
LEFT, BOTTOM, TOP = 48.0, 24.0, 8.0
# Stacked from the bottom: what passed, then what was blocked, then errors.
LAYERS = (("passed", "ok"), ("blocked", "blocked"), ("errors", "error"))


@dataclass(frozen=True, slots=True)
class Segment:
    y: float
    height: float
    css: str


@dataclass(frozen=True, slots=True)
class Column:
    x: float
    width: float
    segments: tuple[Segment, ...]
    label: str  # what a screen reader and the tooltip say about the bucket


@dataclass(frozen=True, slots=True)
class Tick:
    y: float
    text: str


@dataclass(frozen=True, slots=True)
class TimeLabel:
    x: float
    text: str


@dataclass(frozen=True, slots=True)
class Timeline:
    width: float
    height: float
    columns: tuple[Column, ...]
    ticks: tuple[Tick, ...]
    times: tuple[TimeLabel, ...]
    baseline: float
    left: float


def _nice_top(value: int) -> int:
    """A round axis maximum at or above `value`."""
    if value <= 5:
        return 5
    magnitude: int = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _time_text(start: str | None, bucket_seconds: int) -> str:
    if start is None:
        return ""
    moment = dt.datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(dt.UTC)
    return moment.strftime("%H:%M" if bucket_seconds < 3 * 3600 else "%m-%d %H:%M")


def timeline(series: list[dict[str, Any]], bucket_seconds: int) -> Timeline:
    """Stacked columns of requests per bucket (passed, blocked, errors) with a y axis."""
    plot_height = HEIGHT - BOTTOM - TOP
    top = _nice_top(max((p["requests"] for p in series), default=0))
    slot = (WIDTH - LEFT) / max(len(series), 1)
    columns = []
    for index, point in enumerate(series):
        values = {
            "blocked": point["blocked"],
            "errors": point["errors"],
            "passed": max(point["requests"] - point["blocked"] - point["errors"], 0),
        }
        y = HEIGHT - BOTTOM
        segments = []
        for name, css in LAYERS:
            height = plot_height * values[name] / top
            if height > 0:
                y -= height
                segments.append(Segment(round(y, 2), round(height, 2), css))
        label = (
            f"{_time_text(point['start'], bucket_seconds)} UTC: {point['requests']} requests, "
            f"{point['blocked']} blocked, {point['errors']} errors"
        )
        x = LEFT + index * slot + slot * 0.1
        columns.append(Column(round(x, 2), round(slot * 0.8, 2), tuple(segments), label))
    ticks = tuple(
        Tick(round(HEIGHT - BOTTOM - plot_height * f, 2), f"{int(top * f):,}")
        for f in (0.0, 0.5, 1.0)
    )
    every = max(len(series) // 6, 1)
    times = tuple(
        TimeLabel(round(LEFT + i * slot + slot / 2, 2), _time_text(p["start"], bucket_seconds))
        for i, p in enumerate(series)
        if i % every == 0
    )
    return Timeline(WIDTH, HEIGHT, tuple(columns), ticks, times, HEIGHT - BOTTOM, LEFT)
