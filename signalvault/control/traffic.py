"""The traffic overview: requests, blocks, redactions, findings, tokens, errors and latency over a
period, narrowed to the records one reader may see.

Buckets are aligned to their size, so a finished bucket is the same for every request: it is
computed once per process and kept (`TrafficCache`); narrowing happens afterwards, on the
(project, key) each tally carries, with the caller's own per-record check.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from signalvault.console import iso
from signalvault.errors import StoreError
from signalvault.store import Store
from signalvault.store.sql import SqlStore
from signalvault.store.traffic_queries import LATENCY_BINS, Bucket, traffic_buckets

# Period -> (bucket seconds, bucket count).
PERIODS: dict[str, tuple[int, int]] = {
    "1h": (60, 60),
    "24h": (1800, 48),
    "7d": (10800, 56),
    "30d": (43200, 60),
}
SETTLE_SECONDS = 600.0  # a bucket ended this long ago has its outcomes final: cached from then
CACHE_BUCKETS = 2000
ERRORS = frozenset({"provider_error", "gateway_error"})
IsVisible = Callable[[str | None, str | None], bool]


class TrafficCache:
    """Finished buckets by (size, start), least recently used dropped first."""

    def __init__(self, entries: int = CACHE_BUCKETS) -> None:
        self._entries = entries
        self._buckets: OrderedDict[tuple[int, float], Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, size: int, start: float) -> Bucket | None:
        with self._lock:
            found = self._buckets.get((size, start))
            if found is not None:
                self._buckets.move_to_end((size, start))
            return found

    def put(self, size: int, start: float, bucket: Bucket) -> None:
        with self._lock:
            self._buckets[(size, start)] = bucket
            while len(self._buckets) > self._entries:
                self._buckets.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Window:
    period: str
    size: int
    first: float  # start of the first bucket
    count: int

    @property
    def end(self) -> float:
        return self.first + self.size * self.count


def window(period: str, now: float) -> Window:
    size, count = PERIODS[period]
    last = (now // size) * size  # the bucket now is in: partial, never cached
    return Window(period, size, last - size * (count - 1), count)


def buckets(store: Store, cache: TrafficCache, span: Window, now: float) -> list[Bucket]:
    """Every bucket of the window: finished ones from the cache (or computed and kept), the
    recent ones computed now, in one query per run of missing buckets."""
    engine = _engine(store)
    found: list[Bucket | None] = [
        cache.get(span.size, span.first + i * span.size) for i in range(span.count)
    ]
    i = 0
    while i < span.count:
        if found[i] is not None:
            i += 1
            continue
        j = i
        while j < span.count and found[j] is None:
            j += 1
        start = span.first + i * span.size
        for offset, bucket in enumerate(traffic_buckets(engine, start, span.size, j - i)):
            found[i + offset] = bucket
            bucket_start = start + offset * span.size
            if bucket_start + span.size <= now - SETTLE_SECONDS:
                cache.put(span.size, bucket_start, bucket)
        i = j
    return [b for b in found if b is not None]


def _engine(store: Store) -> Engine:
    if not isinstance(store, SqlStore):
        raise StoreError("the overview needs an SQL store")
    return store.engine


def overview(
    store: Store, cache: TrafficCache, period: str, is_visible: IsVisible, now: float | None = None
) -> dict[str, Any]:
    """The overview of `period` as JSON-ready values, counting only what `is_visible(project,
    key_id)` admits."""
    moment = time.time() if now is None else now
    span = window(period, moment)
    seen: dict[tuple[str | None, str | None], bool] = {}

    def visible(project: str | None, key_id: str | None) -> bool:
        if (project, key_id) not in seen:
            seen[(project, key_id)] = is_visible(project, key_id)
        return seen[(project, key_id)]

    series: list[dict[str, Any]] = []
    outcomes: dict[str, int] = {}
    models: dict[str, list[int]] = {}
    projects: dict[str, list[int]] = {}
    findings: dict[str, int] = {}
    latency = [0] * (len(LATENCY_BINS) + 1)
    for index, bucket in enumerate(buckets(store, cache, span, moment)):
        point = dict.fromkeys(("requests", "blocked", "errors", "redacted", "tokens"), 0)
        for (project, key_id), tally in bucket.tallies.items():
            if not visible(project, key_id):
                continue
            point["requests"] += tally.requests
            point["tokens"] += tally.tokens
            point["redacted"] += tally.redacted
            point["blocked"] += tally.outcomes.get("blocked", 0)
            point["errors"] += sum(n for o, n in tally.outcomes.items() if o in ERRORS)
            for outcome, number in tally.outcomes.items():
                outcomes[outcome] = outcomes.get(outcome, 0) + number
            for model, (number, used) in tally.models.items():
                row = models.setdefault(model, [0, 0])
                row[0] += number
                row[1] += used
            row = projects.setdefault(project or "(none)", [0, 0])
            row[0] += tally.requests
            row[1] += tally.tokens
            for kind, number in tally.findings.items():
                findings[kind] = findings.get(kind, 0) + number
            for bin_index, number in enumerate(tally.latency):
                latency[bin_index] += number
        series.append({"start": iso(span.first + index * span.size), **point})
    totals = {
        name: sum(p[name] for p in series)
        for name in ("requests", "blocked", "redacted", "errors", "tokens")
    }
    return {
        "period": period,
        "since": iso(span.first),
        "until": iso(span.end),
        "bucket_seconds": span.size,
        "totals": {
            **totals,
            "error_rate": round(totals["errors"] / totals["requests"], 4)
            if totals["requests"]
            else 0.0,
            "p50_ms": percentile(latency, 0.50),
            "p99_ms": percentile(latency, 0.99),
        },
        "series": series,
        "outcomes": [
            {"outcome": k, "requests": v} for k, v in sorted(outcomes.items(), key=lambda i: -i[1])
        ],
        "findings": sorted(
            ({"type": k, "count": v} for k, v in findings.items()), key=lambda f: -f["count"]
        ),
        "tokens_by_model": _ranked(models, "name"),
        "tokens_by_project": _ranked(projects, "name"),
    }


def _ranked(table: dict[str, list[int]], label: str) -> list[dict[str, Any]]:
    rows = [{label: k, "requests": v[0], "tokens": v[1]} for k, v in table.items()]
    return sorted(rows, key=lambda r: (-r["tokens"], -r["requests"], r[label]))


def percentile(histogram: list[int], q: float) -> float | None:
    """The upper bound (ms) of the bin holding the q-quantile; None without samples. The last
    bin has no upper bound: its lower one is given (the answer is then "at least")."""
    total = sum(histogram)
    if not total:
        return None
    rank = q * total
    running = 0
    for index, number in enumerate(histogram):
        running += number
        if running >= rank:
            return float(LATENCY_BINS[min(index, len(LATENCY_BINS) - 1)])
    return float(LATENCY_BINS[-1])
