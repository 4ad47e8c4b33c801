"""The trail as evidence: verification, streamed exports, and data-subject export and erasure."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from signalvault.accounts.principal import Principal
from signalvault.api import authz
from signalvault.api.deps import Context, context, principal
from signalvault.api.models import ErasureReceipt, VerifyResult
from signalvault.audit import AuditTrail
from signalvault.erasure import erase_subject
from signalvault.export.content import ContentReader
from signalvault.export.exporter import CONTENT_EXPORT, SUBJECT_EXPORT
from signalvault.export.formats import encoder
from signalvault.export.query import BATCH, CONTENT_BATCH, ExportFilter, iter_rows, parse_moment
from signalvault.export.record import MetadataRenderer
from signalvault.integrity.verify import verify_trail
from signalvault.store import Store

router = APIRouter(tags=["trail"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]
Format = Literal["csv", "json", "jsonl"]
MEDIA_TYPES = {"csv": "text/csv", "json": "application/json", "jsonl": "application/x-ndjson"}
STREAMED: dict[int | str, dict[str, Any]] = {
    200: {"content": {media: {} for media in MEDIA_TYPES.values()}}
}


@router.post("/api/audit/verify", response_model=VerifyResult)
def verify(api: Ctx, who: Who) -> VerifyResult:
    """Check the whole trail against its signed checkpoints (the same check as `audit verify`)."""
    authz.require(who, "audit.verify", None)
    report = verify_trail(api.store, api.trail.master_keys, api.settings.audit)
    return VerifyResult(**report.as_json())


def stream_records(
    store: Store, trail: AuditTrail, fmt: str, where: ExportFilter, include_content: bool
) -> Iterator[bytes]:
    """The export file's bytes, batch by batch (memory stays flat; plaintext never hits disk)."""
    codec = encoder(fmt, include_content)
    render = MetadataRenderer()
    content = ContentReader(store, trail) if include_content else None
    yield codec.header()
    rows = iter_rows(store, where, with_content=include_content)
    size = CONTENT_BATCH if include_content else BATCH
    while batch := list(islice(rows, size)):
        records = [render(row) for row in batch]
        if content is not None:
            for record, text in zip(records, content.read(batch), strict=True):
                record.update(text)
        yield codec.encode(records)
    yield codec.footer()


def _streamed(
    api: Context, fmt: str, where: ExportFilter, include_content: bool, name: str
) -> StreamingResponse:
    return StreamingResponse(
        stream_records(api.store, api.trail, fmt, where, include_content),
        media_type=MEDIA_TYPES[fmt],
        headers={"content-disposition": f'attachment; filename="{name}.{fmt}"'},
    )


@router.get("/api/export", response_class=StreamingResponse, responses=STREAMED)
def export(
    api: Ctx,
    who: Who,
    format: Format = "jsonl",
    include_content: bool = False,
    project: str | None = None,
    key_id: str | None = None,
    end_user: str | None = None,
    model: str | None = None,
    outcome: str | None = None,
    rule: str | None = None,
    since: Annotated[str | None, Query(description="ISO-8601 time or an age like 7d")] = None,
    until: Annotated[str | None, Query(description="ISO-8601 time or an age like 1h")] = None,
) -> StreamingResponse:
    """Records matching the filters, streamed in the CLI's formats. Without `project` the caller
    needs the permission globally. Content is included only on request, for roles that may read
    it, and the export is recorded in the trail before the first byte is sent."""
    authz.require(who, "export", project)
    where = ExportFilter(
        since=None if since is None else parse_moment(since),
        until=None if until is None else parse_moment(until),
        project=project,
        key_id=key_id,
        end_user=end_user,
        model=model,
        outcome=outcome,
        rule=rule,
    )
    if include_content:
        authz.require(who, "logs.content", project)
        api.trail.record_event(
            CONTENT_EXPORT,
            who.actor,
            {
                "via": "api",
                "format": format,
                "filters": where.as_json(),
                "include_content": True,
            },
            project=project,
        )
    return _streamed(api, format, where, include_content, "signalvault-export")


@router.get("/api/subjects/{user}", response_class=StreamingResponse, responses=STREAMED)
def export_subject(api: Ctx, who: Who, user: str, format: Format = "json") -> StreamingResponse:
    """Everything recorded about one end user, with content (a data-subject access request);
    recorded in the trail before it is sent."""
    authz.require(who, "subjects.export", None)
    where = ExportFilter(end_user=user)
    api.trail.record_event(
        SUBJECT_EXPORT,
        who.actor,
        {"via": "api", "format": format, "include_content": True},
        end_user=user,
    )
    return _streamed(api, format, where, True, "signalvault-subject")


@router.delete("/api/subjects/{user}", response_model=ErasureReceipt)
def erase(api: Ctx, who: Who, user: str) -> ErasureReceipt:
    """Erase an end user: data keys destroyed, records tombstoned, a receipt left in the trail
    naming them only by a keyed hash. Refused (409) while a legal hold covers them."""
    authz.require(who, "subjects.erase", None)
    receipt = erase_subject(api.store, api.trail, user, who.actor)
    return ErasureReceipt(
        record_id=receipt.record_id,
        subject_hash=receipt.subject_hash,
        records=receipt.records,
        data_keys=receipt.keys,
        space_reclaimed=receipt.is_space_reclaimed,
    )
