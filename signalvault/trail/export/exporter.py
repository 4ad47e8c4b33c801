"""Running an export: stream matching records into the file, record the content read in the
trail, sign the manifest, and only then make both files visible."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signalvault import __version__
from signalvault.console import iso
from signalvault.crypto.envelope import MasterKey
from signalvault.errors import ConfigError, StoreError
from signalvault.store import Store
from signalvault.trail.audit import AuditTrail
from signalvault.trail.export import manifest as manifests
from signalvault.trail.export.content import ContentReader, Readable
from signalvault.trail.export.formats import FORMATS, encoder
from signalvault.trail.export.query import (
    BATCH,
    CONTENT_BATCH,
    ExportFilter,
    iter_rows,
    subject_data_keys,
)
from signalvault.trail.export.record import MetadataRenderer
from signalvault.trail.export.sink import AtomicFile
from signalvault.trail.signing import SIGNING_KEY_NAME, Signer

CONTENT_EXPORT = "content_export"
SUBJECT_EXPORT = "subject_export"
AUDIT_EXPORT = "audit_export"  # a manifest's kind for a filtered export of the trail

Progress = Callable[[int], None]


@dataclass(slots=True)
class Tally:
    """What the manifest says about the records, gathered as they stream past."""

    count: int = 0
    first: float | None = None
    last: float | None = None
    policy_versions: set[int] = field(default_factory=set)
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, row: dict[str, Any]) -> None:
        self.count += 1
        created = row["created_at"]
        self.first = created if self.first is None else min(self.first, created)
        self.last = created if self.last is None else max(self.last, created)
        if row.get("policy_version") is not None:
            self.policy_versions.add(row["policy_version"])
        self.kinds[row["kind"]] += 1


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    manifest_path: Path
    count: int
    sha256: str
    size: int
    audit_record_id: str | None


@dataclass(frozen=True, slots=True)
class Exporter:
    """What an export needs from a running deployment."""

    store: Store
    trail: AuditTrail
    signer: Signer
    actor: str
    readable: Readable | None = None  # content of records the actor may not read is withheld

    def export(
        self,
        target: Path,
        fmt: str,
        where: ExportFilter,
        *,
        include_content: bool,
        progress: Progress | None = None,
    ) -> ExportResult:
        """Export the records matching `where`; with content, the read is audited first.

        Raises:
            ConfigError: unknown format or unwritable target (nothing is written).
            StoreError, CryptoError: reading failed (nothing is written).
        """
        return self._run(
            target,
            fmt,
            where,
            include_content=include_content,
            event=CONTENT_EXPORT if include_content else None,
            extra={},
            progress=progress,
        )

    def export_subject(
        self, target: Path, fmt: str, user: str, progress: Progress | None = None
    ) -> ExportResult:
        """Everything about one end user: their records with content, and their data keys."""
        subject = {"user": user, "data_keys": subject_data_keys(self.store, user)}
        return self._run(
            target,
            fmt,
            ExportFilter(end_user=user),
            include_content=True,
            event=SUBJECT_EXPORT,
            extra={"subject": subject},
            progress=progress,
        )

    def _run(
        self,
        target: Path,
        fmt: str,
        where: ExportFilter,
        *,
        include_content: bool,
        event: str | None,
        extra: dict[str, Any],
        progress: Progress | None,
    ) -> ExportResult:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown format {fmt!r} (use {', '.join(FORMATS)})")
        tally = Tally()
        manifest_file = manifests.manifest_path(target)
        with AtomicFile(target) as out:
            chunks = export_chunks(
                self.store, self.trail, fmt, where, include_content, tally, self.readable
            )
            for chunk in chunks:
                out.write(chunk)
                if progress is not None:
                    progress(tally.count)
            audit_id = None
            if event is not None:
                # Recorded before the file becomes visible: if the trail cannot take the
                # record, no content leaves (fail closed).
                audit_id = self.trail.record_event(
                    event,
                    self.actor,
                    {
                        "file": str(target.resolve()),
                        "format": fmt,
                        "filters": where.as_json(),
                        "record_count": tally.count,
                        "sha256": out.sha256,
                        "include_content": include_content,
                    },
                    end_user=where.end_user if event == SUBJECT_EXPORT else None,
                )
            manifest = manifests.sign(
                manifest_fields(
                    SUBJECT_EXPORT if event == SUBJECT_EXPORT else AUDIT_EXPORT,
                    target.name,
                    fmt,
                    where,
                    tally,
                    Digest(out.sha256, out.size),
                    include_content=include_content,
                    audit_record_id=audit_id,
                    extra=extra,
                ),
                self.signer,
            )
            with AtomicFile(manifest_file) as signed:
                signed.write(manifests.render(manifest))
                out.commit()
                signed.commit()
        return ExportResult(target, manifest_file, tally.count, out.sha256, out.size, audit_id)


@dataclass(frozen=True, slots=True)
class Digest:
    sha256: str
    size: int


def manifest_fields(
    kind: str,
    file_name: str,
    fmt: str,
    where: ExportFilter,
    tally: Tally,
    digest: Digest,
    *,
    include_content: bool,
    audit_record_id: str | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """What a manifest states about one export (before it is signed)."""
    return {
        "kind": kind,
        "file": file_name,
        "format": fmt,
        "include_content": include_content,
        "filters": where.as_json(),
        "record_count": tally.count,
        "record_kinds": dict(sorted(tally.kinds.items())),
        "time_range": {"first": iso(tally.first), "last": iso(tally.last)},
        "policy_versions": sorted(tally.policy_versions),
        "sha256": digest.sha256,
        "size_bytes": digest.size,
        "generated_at": iso(time.time()),
        "generator": f"signalvault {__version__}",
        "audit_record_id": audit_record_id,
        **extra,
    }


def export_chunks(
    store: Store,
    trail: AuditTrail,
    fmt: str,
    where: ExportFilter,
    include_content: bool,
    tally: Tally,
    readable: Readable | None = None,
) -> Iterator[bytes]:
    """An export's bytes, one batch of records at a time (memory stays flat), counting the
    records into `tally` as they pass."""
    codec = encoder(fmt, include_content)
    render = MetadataRenderer()
    content = ContentReader(store, trail, readable) if include_content else None
    yield codec.header()
    rows = iter_rows(store, where, with_content=include_content)
    for batch in _batches(rows, CONTENT_BATCH if include_content else BATCH):
        for row in batch:
            tally.add(row)
        records = [_render(render, row) for row in batch]
        if content is not None:
            for record, text in zip(records, content.read(batch), strict=True):
                record.update(text)
        yield codec.encode(records)
    yield codec.footer()


def _render(render: MetadataRenderer, row: dict[str, Any]) -> dict[str, Any]:
    try:
        return render(row)
    except orjson.JSONDecodeError:
        raise StoreError(
            f"record {row['id']}: its stored JSON metadata is damaged; export stopped"
        ) from None


def _batches(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while batch := list(islice(rows, size)):
        yield batch


def deployment_key_id(store: Store, master_key: MasterKey) -> str | None:
    """This deployment's signing key id, without creating a key if there is none."""
    found = store.get_wrapped_secret(SIGNING_KEY_NAME)
    if found is None:
        return None
    seed = master_key.unwrap(SIGNING_KEY_NAME, found[0])
    return Signer(Ed25519PrivateKey.from_private_bytes(seed)).key_id
