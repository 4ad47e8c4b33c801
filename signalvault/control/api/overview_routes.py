"""The overview (traffic over a period), the integrity status with its checkpoints, and the
guardrail playground: what the dashboard's overview, integrity and guardrail pages show, with
the same narrowing as the log listing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from signalvault.control.accounts.principal import Principal
from signalvault.control.api import authz
from signalvault.control.api.deps import Context, context, principal
from signalvault.control.api.overview_models import (
    CheckpointOut,
    IntegrityView,
    Overview,
    Period,
    PlaygroundResult,
    PlaygroundRun,
)
from signalvault.control.api.visibility import own_key_ids
from signalvault.control.playground import try_policy
from signalvault.control.traffic import overview
from signalvault.trail.integrity.status import checkpoint_page, integrity_status

router = APIRouter(tags=["overview"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]


@router.get("/api/overview", response_model=Overview)
def get_overview(api: Ctx, who: Who, period: Period = "24h") -> Overview:
    """Requests, blocks, redactions, findings by type, tokens by model and project, errors and
    latency over `period`, counting only the interactions the caller may read in the logs."""
    own = own_key_ids(api.store, who)

    def is_visible(project: str | None, key_id: str | None) -> bool:
        return authz.may_read_record(who, project, key_id, own)

    stats = overview(api.store, api.traffic, period, is_visible)
    return Overview(**stats, breakers=api.breakers())


@router.get("/api/audit/checkpoints", response_model=IntegrityView)
def list_checkpoints(
    api: Ctx,
    who: Who,
    cursor: Annotated[int | None, Query(ge=1, le=2**62, description="A tree size")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> IntegrityView:
    """The newest seal, records waiting for one, the last verification, and the signed
    checkpoints newest first (follow `next_cursor`, a tree size)."""
    authz.require(who, "integrity.read", None)
    page = checkpoint_page(api.store, cursor, limit + 1)
    more = len(page) > limit
    page = page[:limit]
    return IntegrityView(
        **integrity_status(api.store),
        data=[CheckpointOut(**row) for row in page],
        next_cursor=str(page[-1]["tree_size"]) if more and page else None,
    )


@router.post("/api/policies/playground", response_model=PlaygroundResult)
def playground(body: PlaygroundRun, api: Ctx, who: Who) -> PlaygroundResult:
    """Judge `text` with the draft `rules` as the gateway would: the decision, each rule's
    outcome, where the findings are, and the text as it would be forwarded. Nothing is stored
    or recorded, nothing is forwarded."""
    authz.require(who, "policies.read", None)
    result = try_policy(body.rules, body.text, body.direction, body.model, api.tokens)
    return PlaygroundResult(**result)
