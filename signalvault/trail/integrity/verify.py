"""`audit verify`: re-derive the tamper evidence of the whole trail from the stored rows.

One streaming pass over sealed records by seq (keyset batches, bounded memory): recompute each
live record's leaf, check seq contiguity, rebuild the tree and compare every checkpoint's root,
signature and link; then compare checkpoints kept outside (trusted) and look at unsealed records.
Reads only; never writes to the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signalvault.config import AuditSettings
from signalvault.crypto.envelope import MasterKeys
from signalvault.errors import ConfigError
from signalvault.store import Store
from signalvault.store import seal_queries as q
from signalvault.trail.integrity.checkpoint import Checkpoint, CheckpointError, parse_body
from signalvault.trail.integrity.checkpoint import parse_json_line as parse_checkpoint_line
from signalvault.trail.integrity.leaf import (
    COLUMN_INDEX,
    leaf_data_of_values,
    record_leaf,
    uncleared_columns,
)
from signalvault.trail.integrity.merkle import (
    HASH_SIZE,
    Frontier,
    RangeHasher,
    consistency_ranges,
    leaf_hash,
    verify_consistency,
)
from signalvault.trail.signing import SIGNING_KEY_NAME, Signer

_ID, _SEQ, _LEAF = COLUMN_INDEX["id"], COLUMN_INDEX["seq"], COLUMN_INDEX["leaf_hash"]
_TOMBSTONED = COLUMN_INDEX["tombstoned_at"]
NO_LEAF = b"\x00" * HASH_SIZE  # stands in for a leaf hash that is missing or malformed
MAX_FINDINGS = 50  # findings kept in the report; the counts cover all of them
REORDER_CANDIDATES = 64  # earlier leaf mismatches a later one is compared with


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of evidence that the trail is not as sealed.

    kind: changed | removed | inserted | reordered | checkpoint | trusted | suspicious
    """

    kind: str
    message: str
    record_id: str | None = None
    seq: int | None = None
    # Tree size of the checkpoint concerned: for a record, the one that sealed it.
    checkpoint: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "record_id": self.record_id,
            "seq": self.seq,
            "checkpoint": self.checkpoint,
        }


@dataclass(slots=True)
class VerifyReport:
    tree_size: int = 0
    root: str | None = None
    records_checked: int = 0
    tombstones: int = 0
    checkpoints_checked: int = 0
    sealed_during_run: int = 0
    numbered: int = 0  # numbered by a seal not finished: counted in `unsealed`
    unsealed: int = 0
    trusted_checked: int = 0
    consistency: dict[str, Any] | None = None
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """intact; suspicious (only old unsealed records); tampered (anything else)."""
        if not self.counts:
            return "intact"
        return "suspicious" if set(self.counts) == {"suspicious"} else "tampered"

    @property
    def is_intact(self) -> bool:
        return not self.counts

    def add(self, finding: Finding) -> None:
        self.counts[finding.kind] = self.counts.get(finding.kind, 0) + 1
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(finding)

    def replace(self, record_id: str, finding: Finding) -> None:
        """Restate the `changed` finding of a record once more is known (e.g. it moved)."""
        for index, old in enumerate(self.findings):
            if old.record_id == record_id and old.kind == "changed":
                self.findings[index] = finding
                self.counts["changed"] -= 1
                if not self.counts["changed"]:
                    del self.counts["changed"]
                self.counts[finding.kind] = self.counts.get(finding.kind, 0) + 1
                return

    def first(self, *kinds: str) -> Finding | None:
        return next((f for f in self.findings if not kinds or f.kind in kinds), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "tree_size": self.tree_size,
            "root": self.root,
            "records_checked": self.records_checked,
            "tombstones": self.tombstones,
            "checkpoints_checked": self.checkpoints_checked,
            "sealed_during_run": self.sealed_during_run,
            "unsealed": self.unsealed,
            "trusted_checkpoints_checked": self.trusted_checked,
            "consistency": self.consistency,
            "problems": self.counts,
            "findings": [f.as_json() for f in self.findings],
        }


def deployment_public_key(store: Store, master_key: MasterKeys) -> bytes | None:
    """The signing key's public half, or None if the store has none (never creates one)."""
    found = store.get_wrapped_secret(SIGNING_KEY_NAME)
    if found is None:
        return None
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = master_key.unwrap(SIGNING_KEY_NAME, found[0])
    return Signer(Ed25519PrivateKey.from_private_bytes(seed)).public_raw


def read_trusted(path: Path) -> list[Checkpoint]:
    """Checkpoint JSON lines from a file kept outside the store (blank lines ignored).

    Raises:
        ConfigError: unreadable file or a line that is not a checkpoint.
    """
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a checkpoint file (not UTF-8)") from None
    found = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                found.append(parse_checkpoint_line(line))
            except CheckpointError as exc:
                raise ConfigError(f"{path}, line {number}: {exc}") from None
    if not found:
        raise ConfigError(f"{path}: no checkpoint in the file")
    return found


class _Pass:
    """State of the streaming pass over sealed records and checkpoints."""

    def __init__(
        self, report: VerifyReport, public_key: bytes | None, trusted: Sequence[Checkpoint]
    ) -> None:
        self.report = report
        self.public_key = public_key
        self.frontier = Frontier()
        self.expected = 0
        self.prev_digest: str | None = None
        self.prev_size = 0
        self.roots_at: dict[int, bytes | None] = {c.tree_size: None for c in trusted}
        self.hasher: RangeHasher | None = None
        self.mismatched: list[tuple[int, dict[str, Any], int | None]] = []
        self.covering: int | None = None  # tree size of the checkpoint that sealed this record
        self.is_broken = False  # a seq is missing: roots can no longer be rebuilt

    def _add(self, kind: str, message: str, record_id: str, seq: int) -> None:
        self.report.add(Finding(kind, message, record_id, seq, self.covering))

    def record(self, row: tuple[Any, ...]) -> None:
        """One sealed record, as a tuple in table column order."""
        report = self.report
        record_id, seq, stored = row[_ID], row[_SEQ], row[_LEAF]
        if seq < self.expected:
            self._add("inserted", f"record {record_id} repeats seq {seq}", record_id, seq)
            return
        if seq > self.expected:
            missing = (
                f"seq {self.expected}"
                if seq == self.expected + 1
                else f"seq {self.expected}..{seq - 1}"
            )
            message = (
                f"sealed record(s) at {missing} removed (next present: {record_id} at seq {seq})"
            )
            self._add("removed", message, record_id, self.expected)
            # Without the missing leaves no later root can be rebuilt; keep checking records.
            self.is_broken = True
            self.expected = seq
        if row[_TOMBSTONED] is not None:
            report.tombstones += 1
            uncleared = uncleared_columns(dict(zip(COLUMN_INDEX, row, strict=True)))
            if uncleared:
                message = f"tombstone {record_id} at seq {seq} still holds {', '.join(uncleared)}"
                self._add("changed", message, record_id, seq)
        elif stored is None or leaf_hash(leaf_data_of_values(row)) != stored:
            self._changed(record_id, seq, dict(zip(COLUMN_INDEX, row, strict=True)))
        if stored is None or len(stored) != HASH_SIZE:
            if row[_TOMBSTONED] is not None:
                message = f"tombstone {record_id} at seq {seq} lost its leaf hash"
                self._add("changed", message, record_id, seq)
            stored = NO_LEAF
        report.records_checked += 1
        self.expected += 1
        self.append(bytes(stored))

    def _changed(self, record_id: str, seq: int, values: dict[str, Any]) -> None:
        """A leaf mismatch: a changed record, or records moved between mismatching positions
        (each leaf commits to its seq, so a moved record matches its old seq)."""
        stored = values["leaf_hash"]
        for other_seq, other, other_covering in self.mismatched:
            moved_here = stored is not None and record_leaf({**values, "seq": other_seq}) == stored
            other_moved = other["leaf_hash"] is not None and (
                record_leaf({**other, "seq": seq}) == other["leaf_hash"]
            )
            if other_moved:
                message = f"record {other['id']} was sealed at seq {seq}, now at seq {other_seq}"
                moved = Finding("reordered", message, other["id"], other_seq, other_covering)
                self.report.replace(other["id"], moved)
            if moved_here:
                message = f"record {record_id} was sealed at seq {other_seq}, now at seq {seq}"
                self._add("reordered", message, record_id, seq)
                return
        self._add("changed", f"record {record_id} at seq {seq} changed", record_id, seq)
        if len(self.mismatched) < REORDER_CANDIDATES:
            self.mismatched.append((seq, values, self.covering))

    def append(self, leaf: bytes) -> None:
        if self.is_broken:
            return
        if self.hasher is not None:
            self.hasher.add(self.frontier.size, leaf)
        self.frontier.append(leaf)
        if self.frontier.size in self.roots_at:
            self.roots_at[self.frontier.size] = self.frontier.root()

    def checkpoint(self, row: Any) -> None:
        report, size = self.report, row.tree_size
        report.checkpoints_checked += 1

        def problem(message: str) -> None:
            report.add(
                Finding(
                    "checkpoint", f"checkpoint at tree size {size}: {message}", None, None, size
                )
            )

        try:
            body = parse_body(row.body, row.signature)
        except CheckpointError as exc:
            problem(str(exc))
            return
        if body.tree_size != size or body.root != row.root_hash:
            problem("its row differs from its signed body")
        if self.public_key is None or not body.is_signed_by(self.public_key):
            problem("signature does not verify with this deployment's signing key")
        if body.prev != self.prev_digest:
            problem("does not link to the previous checkpoint (a checkpoint removed or altered)")
        if self.is_broken:
            problem("records it covers are missing")
        elif body.root != self.frontier.root():
            problem(
                f"root does not match the records sealed at seq {self.prev_size}..{size - 1} "
                "(a record or its leaf hash was changed, removed, inserted or reordered)"
            )
        elif row.frontier != self.frontier.to_bytes():
            problem("stored frontier does not match the records")
        self.prev_digest, self.prev_size = body.digest, size


def verify_trail(
    store: Store,
    master_key: MasterKeys,
    settings: AuditSettings,
    *,
    trusted: Sequence[Checkpoint] = (),
    export: Callable[[Checkpoint | None, Any], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    now: float | None = None,
) -> VerifyReport:
    """Check the whole trail; `progress(done, total)` is called per batch, `export(parsed, row)`
    per stored checkpoint (parsed is None if its body is unreadable)."""
    engine = store.engine
    report = VerifyReport()
    public_key = deployment_public_key(store, master_key)
    with engine.connect() as conn:
        head = q.last_checkpoint(conn)
        size = 0 if head is None else int(head.tree_size)
        total = q.count_sealed(conn, size)
    report.tree_size = size
    state = _Pass(report, public_key, trusted)
    reachable = [c for c in trusted if c.tree_size <= size]
    newest_trusted = max(reachable, key=lambda c: c.tree_size, default=None)
    if newest_trusted is not None and newest_trusted.tree_size < size:
        state.hasher = RangeHasher(consistency_ranges(newest_trusted.tree_size, size))
    if public_key is None and size:
        report.add(Finding("checkpoint", "the signing key is missing from the store"))

    checkpoints = _checkpoints(engine, state, export)
    pending = next(checkpoints, None)
    done = 0
    for row in q.sealed_records(engine, size):
        state.covering = None if pending is None else pending.tree_size
        state.record(row)
        while pending is not None and pending.tree_size <= state.expected:
            state.checkpoint(pending)
            pending = next(checkpoints, None)
        done += 1
        if progress is not None and done % 10_000 == 0:
            progress(done, total)
    if state.expected < size:
        message = (
            f"sealed record(s) at seq {state.expected}..{size - 1} removed (the last checkpoint "
            "covers them)"
        )
        report.add(Finding("removed", message, None, state.expected, size))
        state.is_broken = True
    while pending is not None:
        state.checkpoint(pending)
        pending = next(checkpoints, None)
    if progress is not None:
        progress(done, total)
    report.root = state.frontier.root().hex() if size and not state.is_broken else None

    _check_beyond_head(store, report, size)
    _check_trusted(report, state, trusted, public_key, size)
    _check_unsealed(store, report, settings, time.time() if now is None else now)
    return report


def _checkpoints(
    engine: Any, state: _Pass, export: Callable[[Checkpoint | None, Any], None] | None
) -> Iterator[Any]:
    for row in q.all_checkpoints(engine):
        if row.tree_size > state.report.tree_size:
            return  # sealed after the pass began
        if export is not None:
            try:
                export(parse_body(row.body, row.signature), row)
            except CheckpointError:
                export(None, row)
        yield row


def _check_beyond_head(store: Store, report: VerifyReport, size: int) -> None:
    """Records with a seq no checkpoint covers were inserted, unless sealed during this run, or
    numbered by a seal that has not inserted their checkpoint (in progress, or stopped: the next
    seal unseals and seals them), which count as unsealed. The head and that count are read
    after the records: a seal that numbered a record seen is then finished or still counted."""
    with store.engine.connect() as conn:
        beyond = q.records_at_or_above(conn, size, MAX_FINDINGS + 1000)
        head = q.last_checkpoint(conn)
        numbered = q.numbered_count(conn)
    now_size = size if head is None else max(size, int(head.tree_size))
    for row in beyond:
        if row.seq < now_size:
            report.sealed_during_run += 1
        elif row.seq < now_size + numbered:
            report.numbered += 1
        else:
            message = f"record {row.id} carries seq {row.seq}, which no checkpoint covers"
            report.add(Finding("inserted", message, row.id, row.seq))


def _check_trusted(
    report: VerifyReport,
    state: _Pass,
    trusted: Sequence[Checkpoint],
    public_key: bytes | None,
    size: int,
) -> None:
    for checkpoint in trusted:
        report.trusted_checked += 1
        m = checkpoint.tree_size

        def problem(message: str, m: int = m) -> None:
            report.add(
                Finding("trusted", f"trusted checkpoint at tree size {m}: {message}", None, None, m)
            )

        if public_key is None or not checkpoint.is_signed_by(public_key):
            problem("not signed by this deployment's signing key")
        if m > size:
            problem(f"the store's tree has only {size} records (records or checkpoints removed)")
        elif state.roots_at.get(m) != checkpoint.root:
            problem("the store's records up to that size no longer have that root (rewritten)")
    newest = max(
        (c for c in trusted if c.tree_size <= size), key=lambda c: c.tree_size, default=None
    )
    if newest is None or not size or state.is_broken:
        return  # no consistency proof from a tree that cannot be rebuilt
    new_root = state.frontier.root()
    if newest.tree_size == size:
        proof: list[bytes] = []
    else:
        assert state.hasher is not None
        proof = state.hasher.proof(consistency_ranges(newest.tree_size, size))
    is_consistent = verify_consistency(newest.tree_size, size, newest.root, new_root, proof)
    report.consistency = {
        "old_size": newest.tree_size,
        "old_root": newest.root.hex(),
        "new_size": size,
        "new_root": new_root.hex(),
        "proof": [node.hex() for node in proof],
        "is_consistent": is_consistent,
    }


def _check_unsealed(
    store: Store, report: VerifyReport, settings: AuditSettings, now: float
) -> None:
    """Unsealed records are normal (not yet sealed) unless older than a seal should have taken:
    then they may have been inserted behind the sealer's back."""
    margin = suspicion_margin(settings)
    with store.engine.connect() as conn:
        count, old = q.unsealed_summary(
            conn, now - settings.seal_after_seconds - margin, MAX_FINDINGS
        )
        old_count = q.count_unsealed_before(conn, now - settings.seal_after_seconds - margin)
    report.unsealed = count + report.numbered
    for row in old:
        report.add(
            Finding(
                "suspicious",
                f"record {row.id} ({row.outcome}) is unsealed although older than "
                f"seal_after_seconds + {margin:g}s (inserted behind the sealer, or no gateway "
                "has sealed since)",
                row.id,
            )
        )
    if old_count > len(old):
        report.counts["suspicious"] = report.counts.get("suspicious", 0) + old_count - len(old)


def suspicion_margin(settings: AuditSettings) -> float:
    return max(60.0, 3 * settings.seal_interval_seconds)
