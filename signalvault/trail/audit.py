"""The audit trail: one record per interaction, written ahead and completed after the response.

Content is encrypted under the end user's data key with the record id as associated data; the
store only ever sees ciphertext. This module decides what a record holds, the store how to keep it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from signalvault.crypto.envelope import Cipher, MasterKeys, new_key
from signalvault.crypto.gateway_keys import GatewayKey
from signalvault.errors import CryptoError, StoreError
from signalvault.store import Store
from signalvault.store.sql import COMPLETE_RECORD, INSERT_DATA_KEY, INSERT_RECORD, RECORD_COLUMNS
from signalvault.store.writer import WriteOp
from signalvault.trail.linked import TOOL_CALL as TOOL_CALL  # re-exported: event kinds
from signalvault.trail.linked import TOOL_RESULT as TOOL_RESULT
from signalvault.trail.linked import Linked, ToolEvent, decrypt_events, encrypted_with, hold
from signalvault.trail.record_ids import new_record_id as new_record_id  # re-exported
from signalvault.trail.spool import Spool

# Outcomes. A record is written as `unknown` before forwarding, so a crash leaves `unknown`.
UNKNOWN = "unknown"
OK = "ok"
PROVIDER_ERROR = "provider_error"
REJECTED = "rejected"
UNAUTHORIZED = "unauthorized"
BLOCKED = "blocked"
CANCELLED = "cancelled"
STREAM_CUT = "stream_cut"
RATE_LIMITED = "rate_limited"
GATEWAY_ERROR = "gateway_error"  # a bug in the gateway ended the request (logged by type only)
TOOL_ERROR = "tool_error"  # an MCP tool answered, reporting its own failure (`isError`)
OUTCOMES = (
    UNKNOWN,
    OK,
    PROVIDER_ERROR,
    REJECTED,
    UNAUTHORIZED,
    BLOCKED,
    CANCELLED,
    STREAM_CUT,
    RATE_LIMITED,
    GATEWAY_ERROR,
    TOOL_ERROR,
)

# Kinds of records besides interactions (SPEC §7). Events carry an actor and JSON details.
INTERACTION = "interaction"
# Agent events (SPEC §7b): MCP calls and ingested spans are records of their own kind in the
# same trail; tool calls and results (TOOL_CALL, TOOL_RESULT) are held in the record they were
# found in (trail.linked).
MCP_CALL, SPAN = "mcp_call", "span"
EMPTY_ROW: dict[str, Any] = dict.fromkeys(RECORD_COLUMNS)

DATA_KEY_CACHE = 50_000  # unwrapped data keys kept in memory (one per active end user)

log = logging.getLogger("signalvault.audit")


@dataclass(slots=True)
class Interaction:
    """What the gateway knows about one request; filled in as it goes through the proxy."""

    api: str
    kind: str = INTERACTION  # an MCP request through the gateway is an `mcp_call`
    id: str = field(default_factory=new_record_id)
    created_at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    key: GatewayKey | None = None
    end_user: str | None = None
    session_id: str | None = None
    trace_id: str | None = None
    run_id: str | None = None  # the agent run this call belongs to (SPEC §7b)
    parent_id: str | None = None  # the record this event follows from (SPEC §7b)
    call_id: str | None = None  # a tool call's id, linking a call to its result
    tool_name: str | None = None  # the tool (or MCP prompt) an agent event is about
    parent_span: str | None = None  # the caller's traceparent span id (not stored: OTel export)
    details: dict[str, Any] | None = None  # metadata of an agent event (never content)
    classification: str | None = None  # public, internal, confidential, restricted (SPEC §7c)
    model_requested: str | None = None
    is_stream: bool = False
    provider: str | None = None
    model_used: str | None = None
    status_code: int | None = None
    outcome: str = UNKNOWN
    error_code: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_estimated: bool = False
    ttfb_ms: float | None = None
    data_key_id: str | None = None
    cipher: Cipher | None = None  # the data key that encrypted the prompt encrypts the response
    policy_version: int | None = None
    evaluations: list[dict[str, Any]] = field(default_factory=list)  # guardrail results, no values
    attempts: list[dict[str, Any]] = field(default_factory=list)  # provider calls, no content
    held: list[Linked] | None = None  # tool calls and results held in this record (trail.linked)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

    def metadata(self) -> dict[str, Any]:
        """The record row as first written (every column, so inserts batch together)."""
        key = self.key
        return {
            **EMPTY_ROW,
            "id": self.id,
            "kind": self.kind,
            "created_at": self.created_at,
            "completed_at": None,
            "project": key.project if key else None,
            "key_id": key.id if key else None,
            "environment": key.environment if key else None,
            "end_user": self.end_user,
            "session_id": self.session_id,
            "trace_id": self.trace_id,
            "run_id": self.run_id,
            "parent_id": self.parent_id,
            "call_id": self.call_id,
            "tool_name": self.tool_name,
            "details": orjson.dumps(self.details).decode() if self.details else None,
            "classification": self.classification,
            "api": self.api,
            "provider": self.provider,
            "model_requested": self.model_requested,
            "model_used": self.model_used,
            "is_stream": self.is_stream,
            "status_code": self.status_code,
            "outcome": self.outcome,
            "error_code": self.error_code,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens(),
            "tokens_estimated": self.tokens_estimated,
            "latency_ms": None,
            "ttfb_ms": self.ttfb_ms,
            "data_key_id": None,
            "policy_version": self.policy_version,
            "guardrails": self.guardrails_json(),
            "prompt_ct": None,
            "response_ct": None,
            # Targets skipped before forwarding (by class): kept by a refused request's record.
            "attempts": orjson.dumps(self.attempts).decode() if self.attempts else None,
        }

    def guardrails_json(self) -> str | None:
        return orjson.dumps(self.evaluations).decode() if self.evaluations else None

    def total_tokens(self) -> int | None:
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)


class AuditTrail:
    """Writes interaction records to a Store, encrypting content under per-subject data keys."""

    def __init__(
        self,
        store: Store,
        master_key: MasterKeys,
        observer: Callable[[Interaction], None] | None = None,
    ) -> None:
        self._store = store
        self._master_key = master_key
        self._keys: OrderedDict[str, tuple[str, Cipher]] = OrderedDict()
        self._keys_version = store.keys_version()
        # Told about every finished interaction (completed or rejected): metrics and alerts.
        self.observer = observer
        # Told about every tool call and result recorded (OTel export; unset, none is built).
        self.event_observer: Callable[[ToolEvent], None] | None = None
        self._open: dict[str, Interaction] = {}  # written ahead, outcome not yet queued
        # Gives each interaction its data class (SPEC §7c) when written and completed (app.py).
        self.classifier: Callable[[Interaction], str] | None = None
        self.event_classification = "internal"  # of event records that name no class
        self.spool: Spool | None = None  # where writes go while the store fails ([store] spool_dir)

    def _notify(self, interaction: Interaction) -> None:
        if self.observer is not None:
            _tell(self.observer, interaction)

    def _notify_linked(self, linked: Sequence[Linked]) -> None:
        if self.event_observer is not None:
            for event, _ in linked:
                _tell(self.event_observer, event)

    @property
    def master_keys(self) -> MasterKeys:
        return self._master_key

    def _data_key(self, subject: str, ops: list[WriteOp]) -> tuple[str, Cipher]:
        version = self._store.keys_version()
        if version != self._keys_version:  # an erasure (in any process) destroyed data keys
            self._keys.clear()
            self._keys_version = version
        cached = self._keys.get(subject)
        if cached is not None:
            self._keys.move_to_end(subject)
            return cached
        found = self._store.find_data_key(subject)
        if found is not None and not self._master_key.holds(found[2]):
            self._master_key.refresh()  # re-wrapped by a rotation this process has not seen
        if found is not None and self._master_key.holds(found[2]):
            key_id, wrapped, master_key_id = found
            entry = (key_id, Cipher(self._master_key.unwrap(key_id, wrapped, master_key_id)))
        else:
            self._master_key.refresh()  # a new key is wrapped by the newest master key
            key_id = "dk_" + os.urandom(12).hex()
            raw = new_key()
            # Committed in the same transaction as (and before) the first record it encrypts.
            ops.append(
                WriteOp(
                    INSERT_DATA_KEY,
                    {
                        "id": key_id,
                        "subject": subject,
                        "wrapped": self._master_key.wrap(key_id, raw),
                        "master_key_id": self._master_key.key_id,
                        "created_at": time.time(),
                        "destroyed_at": None,
                    },
                )
            )
            # Cached only once committed (see `_remember`): a key whose insert failed must not
            # encrypt later records, whose content would then be unreadable.
            return key_id, Cipher(raw)
        self._remember(subject, entry)
        return entry

    def _remember(self, subject: str, entry: tuple[str, Cipher]) -> None:
        self._keys[subject] = entry
        if len(self._keys) > DATA_KEY_CACHE:
            self._keys.popitem(last=False)

    def classify(self, interaction: Interaction) -> str | None:
        """Set the interaction's data class from what is known of it now (never lowers it)."""
        if self.classifier is not None:
            interaction.classification = self.classifier(interaction)
        return interaction.classification

    def _prepare(self, interaction: Interaction, prompt: bytes | None) -> list[WriteOp]:
        """The ops recording `interaction`; a new data key's insert, if any, comes first."""
        self.classify(interaction)
        ops: list[WriteOp] = []
        row = interaction.metadata()
        if prompt is not None:
            key_id, cipher = self._data_key(interaction.end_user or "", ops)
            interaction.data_key_id, interaction.cipher = key_id, cipher
            row["data_key_id"] = key_id
            row["prompt_ct"] = cipher.encrypt(prompt, (interaction.id + ":prompt").encode())
        ops.append(WriteOp(INSERT_RECORD, row))
        return ops

    async def begin(
        self, interaction: Interaction, prompt: bytes | None, linked: Sequence[Linked] = ()
    ) -> None:
        """Write the record (outcome unknown) and the agent events `linked` to it; return once
        durable. StoreError: not committed, the caller must not forward."""
        ops = self._prepare(interaction, prompt)
        links = hold(interaction, ops[-1].params, linked)
        await self._write_ahead(ops + links if links else ops)
        self._open[interaction.id] = interaction
        self._remember_new_key(interaction, ops)
        self._notify_linked(linked)

    async def record_rejected(
        self, interaction: Interaction, prompt: bytes | None, linked: Sequence[Linked] = ()
    ) -> None:
        """Record an attempt that ended before forwarding (bad input, auth, limits, blocks), with
        the agent events `linked` to it. Waits for the commit only when a new data key is in it."""
        ops = self._prepare(interaction, prompt)
        ops[-1].params.update(completed_at=time.time(), latency_ms=interaction.elapsed_ms())
        has_new_key = len(ops) > 1
        # No link rows: what a refused request held never reached the model, so no call is
        # answered by it (a result sent again must be judged again).
        ops += hold(interaction, ops[-1].params, linked, 0, keep=False)
        self._notify(interaction)
        self._notify_linked(linked)
        if not has_new_key:
            # Nothing waits for it, but it is synced with its commit like a forwarded request's.
            self._write_later([replace(op, must_sync=True) for op in ops])
            return
        await self._write_ahead(ops)
        self._remember_new_key(interaction, ops)

    async def _write_ahead(self, ops: list[WriteOp]) -> None:
        """Commit `ops` durably: to the store, or to the spool while the store fails."""
        spool = self.spool
        if spool is not None and spool.is_active:
            await spool.append_durable(ops)  # behind what is already spooled: order is kept
            return
        try:
            await self._store.write_ahead(ops)
        except StoreError:
            if spool is None:
                raise
            await spool.append_durable(ops)  # raises StoreError when it cannot take them
            log.warning("audit store unavailable: writes go to the spool")

    def _write_later(self, ops: list[WriteOp]) -> None:
        spool = self.spool
        if spool is not None and spool.is_active:
            try:
                spool.append(ops)
                return
            except StoreError:
                log.error("audit spool full: a write goes to the store directly, out of order")
        self._store.write_later(ops)

    def _remember_new_key(self, interaction: Interaction, ops: list[WriteOp]) -> None:
        if len(ops) > 1 and interaction.data_key_id and interaction.cipher:
            self._remember(
                interaction.end_user or "", (interaction.data_key_id, interaction.cipher)
            )

    def complete(
        self, interaction: Interaction, response: bytes | None, linked: Sequence[Linked] = ()
    ) -> None:
        """Queue the outcome of a forwarded request (after response, stream end or failure),
        with the agent events `linked` to it (the tool calls its answer asked for)."""
        self.classify(interaction)
        values: dict[str, Any] = {
            "_id": interaction.id,
            "completed_at": time.time(),
            "provider": interaction.provider,
            "model_used": interaction.model_used,
            "status_code": interaction.status_code,
            "outcome": interaction.outcome,
            "error_code": interaction.error_code,
            "prompt_tokens": interaction.prompt_tokens,
            "completion_tokens": interaction.completion_tokens,
            "total_tokens": interaction.total_tokens(),
            "tokens_estimated": interaction.tokens_estimated,
            "latency_ms": interaction.elapsed_ms(),
            "ttfb_ms": interaction.ttfb_ms,
            "response_ct": None,
            "guardrails": interaction.guardrails_json(),
            "attempts": orjson.dumps(interaction.attempts).decode()
            if interaction.attempts
            else None,
            "classification": interaction.classification,
            # None keeps what the record holds (the results its request sent back).
            "events": None,
            "events_ct": None,
            "tool_calls": None,
        }
        if response is not None and interaction.cipher is not None:
            values["response_ct"] = interaction.cipher.encrypt(
                response, (interaction.id + ":response").encode()
            )
        ops = [WriteOp(COMPLETE_RECORD, values)]
        held, interaction.held = interaction.held or [], None  # final now (trail.linked.hold)
        if linked:
            ops += hold(interaction, values, [*held, *linked], len(linked), keep=False)
        self._write_later(ops)
        self._open.pop(interaction.id, None)
        self._notify(interaction)
        self._notify_linked(linked)

    def abandon(self, interaction: Interaction) -> None:
        """Complete an interaction whose handling failed unexpectedly, if it was written ahead
        and is still open, so it neither stays `unknown` nor lingers in memory."""
        if interaction.id in self._open:
            interaction.outcome = GATEWAY_ERROR
            interaction.status_code = 500
            interaction.error_code = "internal_error"
            self.complete(interaction, None)

    def complete_open(self, outcome: str, error_code: str) -> int:
        """Complete every interaction written ahead but never completed (its task was cancelled
        at shutdown) with `outcome`, so none stays `unknown`; returns how many there were."""
        stranded = list(self._open.values())
        for interaction in stranded:
            interaction.outcome = outcome
            interaction.error_code = error_code
            self.complete(interaction, None)
        return len(stranded)

    async def record_batch(
        self, events: Sequence[tuple[Interaction, bytes | None, float | None]]
    ) -> None:
        """Commit finished events from outside the gateway (ingested spans) at once: (event,
        content to encrypt under its end user's data key, latency ms). StoreError: nothing was."""
        ops: list[WriteOp] = []
        keyed: dict[str, Interaction] = {}  # per end user, the event whose data key the rest use
        for event, content, latency_ms in events:
            first = keyed.get(event.end_user or "")
            if first is not None and content is not None:
                prepared = [encrypted_with(first, event, content)]
            else:
                prepared = self._prepare(event, content)
                if content is not None:
                    keyed[event.end_user or ""] = event
            ended = event.created_at + (latency_ms or 0.0) / 1000.0
            prepared[-1].params.update(completed_at=ended, latency_ms=latency_ms)
            ops += prepared
        await self._write_ahead(ops)
        for subject, event in keyed.items():
            if event.data_key_id and event.cipher:
                self._remember(subject, (event.data_key_id, event.cipher))

    def decrypt_events(
        self, row: dict[str, Any], keys: dict[str, Cipher] | None = None
    ) -> list[str | None] | None:
        """The contents of the tool calls and results a stored record holds, in the order of its
        `events` (None if it keeps none). Raises CryptoError as `decrypt` does."""
        if row.get("events_ct") is None or row.get("data_key_id") is None:
            return None
        return decrypt_events(self._cipher(row["data_key_id"], keys), row)

    def record_event(
        self,
        kind: str,
        actor: str,
        details: dict[str, Any],
        *,
        project: str | None = None,
        end_user: str | None = None,
        outcome: str = OK,
        record_id: str | None = None,
        classification: str | None = None,
    ) -> str:
        """Write a non-interaction record (admin action, content read, retention run, erasure
        receipt, ...) and return its id once committed. `details` is metadata, never content.
        `record_id` (from `new_record_id`) lets a caller announce the id before the record exists.
        An event about one end user is `confidential` (personal data) unless a class is given.

        Raises:
            StoreError: it could not be committed (the caller should not proceed as if audited).
        """
        now = time.time()
        record_id = record_id or new_record_id()
        row = {
            **EMPTY_ROW,
            "id": record_id,
            "kind": kind,
            "created_at": now,
            "completed_at": now,
            "project": project,
            "end_user": end_user,
            "is_stream": False,
            "outcome": outcome,
            "tokens_estimated": False,
            "actor": actor,
            "details": orjson.dumps(details).decode(),
            "classification": classification
            or ("confidential" if end_user else self.event_classification),
        }
        self._store.write_later([WriteOp(INSERT_RECORD, row)])
        self._store.flush()
        return record_id

    def decrypt(
        self, row: dict[str, Any], keys: dict[str, Cipher] | None = None
    ) -> tuple[bytes | None, bytes | None]:
        """Plaintext (prompt, response) of a stored record. `keys` caches opened data keys by id
        across calls (a bulk reader such as an export, which drops destroyed keys from it).

        Raises:
            CryptoError: the data key was destroyed (erasure) or the ciphertext was altered.
        """
        key_id = row.get("data_key_id")
        if key_id is None:
            return None, None
        cipher = self._cipher(key_id, keys)
        prompt = response = None
        if row.get("prompt_ct"):
            prompt = cipher.decrypt(row["prompt_ct"], (row["id"] + ":prompt").encode())
        if row.get("response_ct"):
            response = cipher.decrypt(row["response_ct"], (row["id"] + ":response").encode())
        return prompt, response

    def _cipher(self, key_id: str, keys: dict[str, Cipher] | None) -> Cipher:
        cipher = None if keys is None else keys.get(key_id)
        if cipher is None:
            found = self._store.get_data_key(key_id)
            if found is None or found[0] is None:
                raise CryptoError("the content's data key no longer exists (erased)")
            cipher = Cipher(self._master_key.unwrap(key_id, found[0], found[1]))
            if keys is not None:
                keys[key_id] = cipher
        return cipher


def _tell(observer: Callable[[Any], None], record: Any) -> None:
    try:
        observer(record)
    except Exception as exc:  # metrics, alerts or telemetry must never fail a request
        log.error("audit observer failed", extra={"error": type(exc).__name__})
