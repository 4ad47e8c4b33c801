"""Agent events held in the record they were found in (SPEC §7b): a tool result in the record
of the request that sent it, a tool call in the record of the model call whose answer asked for
it. The record is each event's `record_id`.

An event is a few fields of JSON metadata in the record's `events` column, and its content (tool
arguments or result) one element of a JSON array encrypted into `events_ct` under the record's
data key (the same end user's), so an erasure of that user makes both unreadable and the
record's seal covers them. A record of their own (a row with thirteen indexes, and its own seal)
made a request carrying tool calls cost ~8.6% more instructions than a plain one; held in their
record, +3-5% (bench/tool_capture.py, docs/audit-and-keys.md). A tool call with a call id
also gets a row in `tool_call_links`, where a later result finds it. A result gets one only when
it answers no call the store knows, or a call of another run: one answering a call of its own
run is found among that run's records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from signalvault.crypto.envelope import Cipher
from signalvault.store.schema import tool_call_links
from signalvault.store.sql import INSERT_RECORD
from signalvault.store.writer import WriteOp

TOOL_CALL, TOOL_RESULT = "tool_call", "tool_result"
INSERT_LINK = tool_call_links.insert()
# What an event's metadata holds beyond its own fields: the rest comes from its record.
_SHARED = (
    "run_id",
    "session_id",
    "trace_id",
    "end_user",
    "project",
    "key_id",
    "environment",
    "api",
    "provider",
    "model_requested",
    "classification",
    "policy_version",
    "data_key_id",
)


class Source(Protocol):
    """The record the events are held in (audit.Interaction; named here so this module needs no
    audit)."""

    @property
    def id(self) -> str: ...
    @property
    def cipher(self) -> Cipher | None: ...
    @property
    def key(self) -> Any: ...
    @property
    def run_id(self) -> str | None: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def trace_id(self) -> str | None: ...

    held: list[Linked] | None  # what it holds so far (its completion writes them again)


@dataclass(slots=True)
class ToolEvent:
    """A tool call or result, held in the record of `holder`, whose run, session, trace, key
    and model it shares. Lean on purpose: one is made per call and per result, on the request
    path, and a full Interaction cost ~3x as much to build."""

    kind: str  # TOOL_CALL or TOOL_RESULT
    holder: Source
    call_id: str | None
    id: str
    created_at: float
    parent_id: str | None = None
    tool_name: str | None = None
    outcome: str = "ok"
    evaluations: list[dict[str, Any]] = field(default_factory=list)  # guardrail results
    details: dict[str, Any] | None = None  # metadata, never content
    call_run: str | None = None  # a result's: the run of the call it answers (see `hold`)


class Record(Protocol):
    """A record of its own whose content another record's data key encrypts (`encrypted_with`)."""

    @property
    def id(self) -> str: ...
    @property
    def created_at(self) -> float: ...
    @property
    def cipher(self) -> Cipher | None: ...
    @property
    def data_key_id(self) -> str | None: ...

    classification: str | None

    def metadata(self) -> dict[str, Any]: ...


Linked = tuple[ToolEvent, str | None]  # an agent event and its content (text, to encrypt)


def hold(
    source: Source,
    values: dict[str, Any],
    linked: Sequence[Linked],
    new: int = -1,
    *,
    keep: bool = True,
) -> list[WriteOp]:
    """Put `linked` in `source`'s record (`values`: its insert or completion), their content
    encrypted with `source`'s data key (none if `source` kept no content: the events then keep
    none either); return the `tool_call_links` rows of the last `new` of them (all by default)
    that have a call id, which are new to the store. `keep`: the record's completion may hold
    more, so `source.held` keeps these. A final write must not keep them: each event points back
    at `source` (`holder`), a cycle only the garbage collector would free, with the request's
    dicts and lists (every tool request's, and tool requests ran collections plain ones did not)."""
    if not linked:
        return []
    source.held = list(linked) if keep else None
    first_new = len(linked) - new if new >= 0 else 0
    events = []
    contents = []
    links: list[WriteOp] = []
    calls = 0
    for index, (event, content) in enumerate(linked):
        entry: dict[str, Any] = {"id": event.id, "type": event.kind, "at": event.created_at}
        if event.parent_id is not None:
            entry["parent_id"] = event.parent_id
        call_id = event.call_id
        if call_id is not None:
            entry["call_id"] = call_id
            # A result answering a call of its own run needs no row: the store finds it in the
            # run's records (store.run_queries.tool_events), where a row was one more
            # random-key index insert per loop step (~37k instructions, bench/tool_capture.py).
            if index >= first_new and (event.call_run is None or event.call_run != source.run_id):
                links.append(_link(source, event, call_id))
        if event.tool_name is not None:
            entry["tool_name"] = event.tool_name
        entry["outcome"] = event.outcome
        if event.evaluations:
            entry["guardrails"] = event.evaluations
        if event.details:
            entry["details"] = event.details
        events.append(entry)
        contents.append(content)
        if event.kind == TOOL_CALL:
            calls += 1
    values["events"] = orjson.dumps(events).decode()
    values["tool_calls"] = calls or None
    cipher = source.cipher
    values["events_ct"] = (
        None
        if cipher is None
        else cipher.encrypt(orjson.dumps(contents), (source.id + ":events").encode())
    )
    return links


def _link(source: Source, event: ToolEvent, call_id: str) -> WriteOp:
    """The `tool_call_links` row where a later request finds `event` by its call id."""
    key = source.key
    return WriteOp(
        INSERT_LINK,
        {
            "call_id": call_id,
            "project": key.project if key is not None else None,
            "kind": event.kind,
            "event_id": event.id,
            "record_id": source.id,
            "run_id": source.run_id,  # its events are in its run
            "tool_name": event.tool_name,
            "created_at": event.created_at,
        },
        order_free=True,
    )


def encrypted_with(first: Record, record: Record, content: bytes) -> WriteOp:
    """The insert of `record`, its content encrypted with `first`'s data key (records of one
    end user in one batch share it), of `first`'s class unless it has one."""
    if record.classification is None:
        record.classification = first.classification
    row = record.metadata()
    row["completed_at"] = record.created_at
    if first.cipher is not None:
        row["data_key_id"] = first.data_key_id
        row["prompt_ct"] = first.cipher.encrypt(content, (record.id + ":prompt").encode())
    return WriteOp(INSERT_RECORD, row)


def expand(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The events a stored record holds, each as a row shaped like a record of its own (kind
    `tool_call` or `tool_result`, its `record_id` the holder's id), content left encrypted:
    `event_index` is its place in the holder's `events_ct`."""
    stored = row.get("events")
    if not stored:
        return []
    shared = {name: row.get(name) for name in _SHARED}
    rows = []
    for index, entry in enumerate(orjson.loads(stored)):
        evaluations = entry.get("guardrails")
        details = entry.get("details")
        rows.append(
            {
                **shared,
                "id": entry["id"],
                "kind": entry["type"],
                "created_at": entry["at"],
                "completed_at": entry["at"],
                "parent_id": entry.get("parent_id"),
                "call_id": entry.get("call_id"),
                "tool_name": entry.get("tool_name"),
                "outcome": entry["outcome"],
                "model_used": None,
                "status_code": None,
                "error_code": None,
                "attempts": None,
                "guardrails": orjson.dumps(evaluations).decode() if evaluations else None,
                "details": orjson.dumps(details).decode() if details else None,
                "prompt_ct": None,
                "response_ct": None,
                "record_id": row["id"],
                "event_index": index,
                "events_ct": row.get("events_ct"),
                "tombstoned_at": row.get("tombstoned_at"),
            }
        )
    return rows


def decrypt_events(cipher: Cipher, row: dict[str, Any]) -> list[str | None]:
    """The contents of a record's events, in order (its `events_ct` must be set).

    Raises:
        CryptoError: the ciphertext was altered.
    """
    plain = cipher.decrypt(row["events_ct"], (row["id"] + ":events").encode())
    contents: list[str | None] = orjson.loads(plain)
    return contents
