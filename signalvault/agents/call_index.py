"""What this process knows of recent tool calls and runs: which record made a call (by project
and call id), whether it was answered already, and how many model and tool calls each run made.

Bounded LRU maps in front of the store: a tool loop's next request usually reaches the process
that saw its calls; on a miss (another replica, a restart) the store answers by the indexed
call_id and run_id columns.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

CALLS_KEPT = 100_000
RUNS_KEPT = 50_000


@dataclass(slots=True)
class KnownCall:
    """A call id as the trail has it: the tool_call record (None: no call seen, only a result)
    and whether a tool_result answering it was recorded."""

    record_id: str | None
    run_id: str | None
    created_at: float
    tool_name: str | None
    is_answered: bool = False


CallLookup = Callable[[str | None, Sequence[str]], list[dict[str, Any]]]
RunCountLookup = Callable[[str], tuple[int, int]]


class CallIndex:
    def __init__(self, lookup: CallLookup, size: int = CALLS_KEPT) -> None:
        self._lookup = lookup
        self._size = size
        self._calls: OrderedDict[tuple[str | None, str], KnownCall] = OrderedDict()

    def find(self, project: str | None, call_ids: Sequence[str]) -> dict[str, KnownCall]:
        """The known calls among `call_ids` (memory first, then one store query for the rest)."""
        found: dict[str, KnownCall] = {}
        missing = []
        for call_id in call_ids:
            known = self._calls.get((project, call_id))
            if known is None:
                missing.append(call_id)
            else:
                found[call_id] = known
        if missing:
            for row in self._lookup(project, missing):
                known = found.get(row["call_id"])
                if row["kind"] == "tool_call" and (known is None or known.record_id is None):
                    answered = bool(row.get("answered")) or (
                        known is not None and known.is_answered
                    )
                    known = KnownCall(
                        row["id"], row["run_id"], row["created_at"], row["tool_name"], answered
                    )
                    found[row["call_id"]] = known
                elif row["kind"] == "tool_result":
                    if known is None:
                        known = KnownCall(None, row["run_id"], row["created_at"], row["tool_name"])
                        found[row["call_id"]] = known
                    known.is_answered = True
            for call_id in missing:
                if call_id in found:
                    self.remember(project, call_id, found[call_id])
        return found

    def remember(self, project: str | None, call_id: str, known: KnownCall) -> None:
        key = (project, call_id)
        calls = self._calls
        calls[key] = known
        calls.move_to_end(key)  # (a key set again keeps its place in an OrderedDict)
        if len(calls) > self._size:
            calls.popitem(last=False)


class RunCounts:
    """Model and tool calls per run, seeded from the store the first time a run is seen."""

    def __init__(self, lookup: RunCountLookup, size: int = RUNS_KEPT) -> None:
        self._lookup = lookup
        self._size = size
        self._runs: OrderedDict[str, list[int]] = OrderedDict()

    def get(self, run_id: str) -> list[int]:
        """[model calls, tool calls] of the run (a live list: add to it as calls happen)."""
        counts = self._runs.get(run_id)
        if counts is None:
            counts = list(self._lookup(run_id))
            self._runs[run_id] = counts
            if len(self._runs) > self._size:
                self._runs.popitem(last=False)
        else:
            self._runs.move_to_end(run_id)
        return counts

    def add(self, run_id: str, model_calls: int = 0, tool_calls: int = 0) -> None:
        counts = self._runs.get(run_id)
        if counts is not None:  # unseeded runs are counted from the store when first needed
            counts[0] += model_calls
            counts[1] += tool_calls


LatestCallLookup = Callable[[str, str], str | None]


class LatestCalls:
    """The latest tool_call record per run and tool name: the call an MCP `tools/call` of that
    tool in that run carries out (MCP requests name no call id), so it sits under it in the run."""

    def __init__(self, lookup: LatestCallLookup, size: int = RUNS_KEPT) -> None:
        self._lookup = lookup
        self._size = size
        self._latest: OrderedDict[tuple[str, str], str] = OrderedDict()

    def remember(self, run_id: str, tool_name: str, record_id: str) -> None:
        self._latest[(run_id, tool_name)] = record_id
        self._latest.move_to_end((run_id, tool_name))
        if len(self._latest) > self._size:
            self._latest.popitem(last=False)

    def find(self, run_id: str, tool_name: str) -> str | None:
        """Memory first; then the store (a call made through another replica, or before a
        restart), which may not hold a call recorded a moment ago (tool events are written
        behind their model call)."""
        found = self._latest.get((run_id, tool_name))
        return found if found is not None else self._lookup(run_id, tool_name)
