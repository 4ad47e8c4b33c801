"""The trail as evidence: verification, streamed exports, and data-subject export and erasure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse

from signalvault.control.accounts.principal import Principal
from signalvault.control.api import authz
from signalvault.control.api.content_classes import readable_by
from signalvault.control.api.deps import Context, context, principal
from signalvault.control.api.trail_models import ErasureReceipt, ExportManifest, VerifyResult
from signalvault.errors import NotFound
from signalvault.evidence.incidents import raise_alert, verification_details
from signalvault.trail.erasure import erase_subject
from signalvault.trail.export.exporter import AUDIT_EXPORT, CONTENT_EXPORT, SUBJECT_EXPORT
from signalvault.trail.export.query import ExportFilter, parse_moment, subject_data_keys
from signalvault.trail.export.streamed import MANIFEST_EVENT, stream_export
from signalvault.trail.integrity.status import record_verification
from signalvault.trail.integrity.verify import verify_trail
from signalvault.trail.signing import load_signer

router = APIRouter(tags=["trail"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]
Format = Literal["csv", "json", "jsonl"]
ExportId = Annotated[str, Path(min_length=36, max_length=36)]
EXPORT_ID_HEADER = "X-SignalVault-Export-Id"
MEDIA_TYPES = {"csv": "text/csv", "json": "application/json", "jsonl": "application/x-ndjson"}
STREAMED: dict[int | str, dict[str, Any]] = {
    200: {"content": {media: {} for media in MEDIA_TYPES.values()}}
}


@router.post("/api/audit/verify", response_model=VerifyResult)
def verify(api: Ctx, who: Who) -> VerifyResult:
    """Check the whole trail against its signed checkpoints (the same check as `audit verify`);
    the run and its outcome are recorded in the trail (`audit_verified`)."""
    return run_verification(api, who, via="api")


def run_verification(
    api: Context, who: Principal, *, via: str, progress: Callable[[int, int], None] | None = None
) -> VerifyResult:
    """A verification as the route runs it; `progress(done, total)` is called per batch."""
    authz.require(who, "audit.verify", None)
    report = verify_trail(api.store, api.trail.master_keys, api.settings.audit, progress=progress)
    record_verification(api.trail, who.actor, report, via)
    if not report.is_intact:
        raise_alert(api.incidents, "verification_failed", verification_details(report.as_json()))
    return VerifyResult(**report.as_json())


def _streamed(
    api: Context,
    who: Principal,
    *,
    kind: str,
    fmt: str,
    where: ExportFilter,
    include_content: bool,
    audit_record_id: str | None,
    extra: dict[str, Any] | None = None,
) -> StreamingResponse:
    name = f"signalvault-{'subject' if kind == SUBJECT_EXPORT else 'export'}.{fmt}"
    started = stream_export(
        api.store,
        api.trail,
        load_signer(api.store, api.trail.master_keys),
        who.actor,
        kind=kind,
        file_name=name,
        fmt=fmt,
        where=where,
        include_content=include_content,
        audit_record_id=audit_record_id,
        extra=extra,
        readable=readable_by(api, who) if include_content else None,
    )
    return StreamingResponse(
        started.chunks,
        media_type=MEDIA_TYPES[fmt],
        headers={
            "content-disposition": f'attachment; filename="{name}"',
            EXPORT_ID_HEADER: started.export_id,
        },
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
    classification: Annotated[
        str | None, Query(description="public, internal, confidential or restricted")
    ] = None,
    run: Annotated[str | None, Query(description="Only the records of this agent run")] = None,
    since: Annotated[str | None, Query(description="ISO-8601 time or an age like 7d")] = None,
    until: Annotated[str | None, Query(description="ISO-8601 time or an age like 1h")] = None,
) -> StreamingResponse:
    """Records matching the filters, streamed in the CLI's formats. Without `project` the caller
    needs the permission globally. Content is included only on request, for roles that may read
    it, and such an export is recorded in the trail before the first byte is sent. The
    `X-SignalVault-Export-Id` header names the signed manifest, available from
    `GET /api/exports/{id}/manifest` once the whole body has been sent."""
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
        classification=classification,
        run_id=run,
    )
    audit_id = None
    if include_content:
        authz.require(who, "logs.content", project)
        audit_id = api.trail.record_event(
            CONTENT_EXPORT,
            who.actor,
            {
                "via": "api",
                "format": format,
                "filters": where.as_json(),
                "include_content": True,
            },
            project=project,
            end_user=end_user,
        )
    return _streamed(
        api,
        who,
        kind=AUDIT_EXPORT,
        fmt=format,
        where=where,
        include_content=include_content,
        audit_record_id=audit_id,
    )


@router.get("/api/subjects/{user}", response_class=StreamingResponse, responses=STREAMED)
def export_subject(api: Ctx, who: Who, user: str, format: Format = "json") -> StreamingResponse:
    """Everything recorded about one end user, with content (a data-subject access request);
    recorded in the trail before it is sent. Signed manifest as for `GET /api/export`."""
    authz.require(who, "subjects.export", None)
    where = ExportFilter(end_user=user)
    audit_id = api.trail.record_event(
        SUBJECT_EXPORT,
        who.actor,
        {"via": "api", "format": format, "include_content": True},
        end_user=user,
    )
    return _streamed(
        api,
        who,
        kind=SUBJECT_EXPORT,
        fmt=format,
        where=where,
        include_content=True,
        audit_record_id=audit_id,
        extra={"subject": {"user": user, "data_keys": subject_data_keys(api.store, user)}},
    )


@router.get("/api/exports/{export_id}/manifest", response_model=ExportManifest)
def export_manifest(export_id: ExportId, api: Ctx, who: Who) -> ExportManifest:
    """The signed manifest of a finished API export (its id is the `X-SignalVault-Export-Id`
    header of the export's response). Save it beside the file as `<file>.manifest.json` and run
    `signalvault export verify <file>`. 404 until the whole body has been sent."""
    row = api.store.get_record(export_id)
    if row is None or row["kind"] != MANIFEST_EVENT:
        raise NotFound("no finished export with this id")
    manifest: dict[str, Any] = orjson.loads(row["details"])["manifest"]
    if manifest.get("kind") == SUBJECT_EXPORT:
        allowed = authz.role_allows(who, "subjects.export", None)
    else:
        allowed = authz.role_allows(who, "export", row["project"])
    if not allowed:
        raise NotFound("no finished export with this id")
    return ExportManifest(**manifest)


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
