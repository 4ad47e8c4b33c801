"""Exports: starting one (`GET /api/export`, the same filters and formats, streamed as a
download), the finished exports the viewer may see with their signed manifests
(`GET /api/exports/{id}/manifest`) and the manifest's signature checked here; the page's script
shows progress while the file arrives and checks its SHA-256 against the manifest."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from signalvault.config import CLASSES
from signalvault.control.api import log_routes, trail_routes
from signalvault.dashboard.render import page
from signalvault.dashboard.viewer import Viewer, field, look, read_form
from signalvault.trail.audit import OUTCOMES
from signalvault.trail.export.manifest import check_deployment_key, check_signature
from signalvault.trail.export.streamed import MANIFEST_EVENT
from signalvault.trail.integrity.verify import deployment_public_key
from signalvault.trail.signing import public_key_id

EXPORT_FILTERS = ("since", "until", "project", "key_id", "end_user", "model", "outcome", "rule")
FORMATS = ("jsonl", "json", "csv")
RECENT = 20


async def exports(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/export")
    recent = await viewer.call(log_routes.list_logs, kind=MANIFEST_EVENT, limit=RECENT)
    return page(
        request,
        "exports.html",
        viewer,
        exports=[_summary(r.model_dump()) for r in recent.data],
        formats=FORMATS,
        outcomes=OUTCOMES,
        classes=CLASSES,
        may_include_content=viewer.may("logs.content"),
    )


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    manifest = (record.get("details") or {}).get("manifest") or {}
    return {
        "id": record["id"],
        "time": record["time"],
        "actor": record.get("actor"),
        "file": manifest.get("file"),
        "format": manifest.get("format"),
        "kind": manifest.get("kind"),
        "records": manifest.get("record_count"),
        "size": manifest.get("size_bytes"),
        "sha256": manifest.get("sha256"),
        "include_content": manifest.get("include_content"),
        "filters": manifest.get("filters") or {},
    }


async def start(request: Request) -> Response:
    """The export itself, as an attachment; its id comes back in a header for the script."""
    form = await read_form(request)
    viewer = await look(request, "GET", "/api/export", form)
    fmt = field(form, "format") or "jsonl"
    filters = {name: field(form, name) for name in EXPORT_FILTERS}
    return await viewer.call(
        trail_routes.export,
        format=fmt if fmt in FORMATS else "jsonl",
        include_content=field(form, "include_content") == "yes",
        **filters,
    )


async def manifest(request: Request) -> Response:
    viewer = await look(request, "GET", "/api/exports/{export_id}/manifest")
    found = await viewer.call(trail_routes.export_manifest, found_id(request))
    body = found.model_dump()
    if request.query_params.get("download") == "1":
        return Response(
            orjson.dumps(body, option=orjson.OPT_INDENT_2),
            media_type="application/json",
            headers={"content-disposition": f'attachment; filename="{found.file}.manifest.json"'},
        )
    checks = await _checks(viewer, body)
    return page(
        request, "manifest.html", viewer, manifest=body, export_id=found_id(request), checks=checks
    )


async def _checks(viewer: Viewer, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's own checks, as `signalvault export verify` makes them (the file's digest
    is checked by the page's script, or by that command on the downloaded file)."""
    public = await run_in_threadpool(
        deployment_public_key, viewer.api.store, viewer.api.trail.master_keys
    )
    key_id = None if public is None else public_key_id(public)
    found = [check_signature(body), check_deployment_key(body, key_id)]
    return [{"name": c.name, "ok": c.is_ok, "detail": c.detail} for c in found]


def found_id(request: Request) -> str:
    return str(request.path_params["export_id"])[:36]


routes = [
    Route("/exports", exports, methods=["GET"]),
    Route("/exports", start, methods=["POST"]),
    Route("/exports/{export_id}", manifest, methods=["GET"]),
]
