"""Exports streamed over HTTP (the admin API): the same bytes and manifest as a file export.

The manifest can only be signed once the last byte is known, so it is kept in the trail: the
stream's last chunk is held back until an `export_manifest` record carrying the signed manifest
is committed under the id announced when the stream started. A client that got the whole body
can then fetch the manifest by that id and check the file with `signalvault export verify`; a
stream that breaks off leaves no manifest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from signalvault.store import Store
from signalvault.trail.audit import AuditTrail, new_record_id
from signalvault.trail.export import manifest as manifests
from signalvault.trail.export.content import Readable
from signalvault.trail.export.exporter import Digest, Tally, export_chunks, manifest_fields
from signalvault.trail.export.query import ExportFilter
from signalvault.trail.signing import Signer

MANIFEST_EVENT = "export_manifest"


@dataclass(frozen=True, slots=True)
class StreamedExport:
    """One export in flight: `export_id` names the manifest record it will leave."""

    export_id: str
    chunks: Iterator[bytes]


def stream_export(
    store: Store,
    trail: AuditTrail,
    signer: Signer,
    actor: str,
    *,
    kind: str,
    file_name: str,
    fmt: str,
    where: ExportFilter,
    include_content: bool,
    audit_record_id: str | None,
    extra: dict[str, Any] | None = None,
    readable: Readable | None = None,
) -> StreamedExport:
    """Start an export; nothing is read until the chunks are iterated."""
    # A UUIDv7 taken now: the manifest record is written when the stream ends, but its id (and
    # so its place in id-ordered listings) says when the export began.
    export_id = new_record_id()

    def chunks() -> Iterator[bytes]:
        tally = Tally()
        digest = hashlib.sha256()
        size = 0
        held: bytes | None = None
        for chunk in export_chunks(store, trail, fmt, where, include_content, tally, readable):
            digest.update(chunk)
            size += len(chunk)
            if held is not None:
                yield held
            held = chunk
        manifest = manifests.sign(
            manifest_fields(
                kind,
                file_name,
                fmt,
                where,
                tally,
                Digest(digest.hexdigest(), size),
                include_content=include_content,
                audit_record_id=audit_record_id,
                extra=extra or {},
            ),
            signer,
        )
        # If the trail cannot take the manifest, the body stays one chunk short: the client sees
        # a broken transfer instead of a complete-looking file that nothing vouches for.
        trail.record_event(
            MANIFEST_EVENT,
            actor,
            {"via": "api", "manifest": manifest},
            project=where.project,
            end_user=where.end_user,
            record_id=export_id,
        )
        if held is not None:
            yield held

    return StreamedExport(export_id, chunks())
