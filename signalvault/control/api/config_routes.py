"""Provider credentials (write-only, listed masked) and guardrail policies under two-person
review: propose, read with the diff, approve or reject, roll back (a new proposal). The services
record every change in the audit trail; the routes only check who may ask and shape the
answers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from signalvault.console import iso
from signalvault.control.accounts.principal import Principal
from signalvault.control.api import authz
from signalvault.control.api.deps import Context, context, principal
from signalvault.control.api.models import (
    PolicyDecision,
    PolicyDetail,
    PolicyDiff,
    PolicyList,
    PolicyPropose,
    PolicyRollback,
    PolicyVersion,
    ProviderCredential,
    ProviderCredentialList,
    ProviderCredentialSet,
)
from signalvault.control.credentials import CredentialInfo
from signalvault.control.policies import PolicyService, version_json
from signalvault.store.policy_queries import PolicyVersion as StoredPolicy

router = APIRouter(tags=["configuration"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]
ProviderName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Version = Annotated[int, Path(ge=1, le=2**53)]


def _credential(info: CredentialInfo) -> ProviderCredential:
    return ProviderCredential(
        provider=info.provider,
        environment=info.environment,
        masked=info.masked,
        master_key_id=info.master_key_id,
        created_at=iso(info.created_at),
        created_by=info.created_by,
        rotated_at=iso(info.rotated_at),
        rotated_by=info.rotated_by,
    )


@router.get("/api/providers", response_model=ProviderCredentialList)
def list_providers(api: Ctx, who: Who) -> ProviderCredentialList:
    """Stored provider credentials, masked (the secrets are not even unwrapped)."""
    authz.require(who, "providers.read", None)
    return ProviderCredentialList(data=[_credential(c) for c in api.credentials.list_masked()])


@router.put("/api/providers/{name}", response_model=ProviderCredential)
def set_provider(
    name: ProviderName, body: ProviderCredentialSet, api: Ctx, who: Who
) -> ProviderCredential:
    """Store (or replace) a provider's credential, encrypted; requests use it from the next one
    on. The answer is masked; the change is audited masked."""
    authz.require(who, "providers.write", None)
    info = api.credentials.set(name, body.api_key, who.actor, body.environment)
    return _credential(info)


def _policies(api: Context) -> PolicyService:
    return PolicyService(api.store, api.trail, review=api.settings.guardrails.two_person_review)


def _version(version: StoredPolicy) -> PolicyVersion:
    return PolicyVersion(**version_json(version))


@router.get("/api/policies", response_model=PolicyList)
def list_policies(api: Ctx, who: Who) -> PolicyList:
    """Every policy version, oldest first, and which one is in force."""
    authz.require(who, "policies.read", None)
    service = _policies(api)
    active = service.active()
    return PolicyList(
        active_version=None if active is None else active.version,
        data=[_version(v) for v in service.versions()],
    )


@router.post("/api/policies", response_model=PolicyVersion, status_code=201)
def propose_policy(body: PolicyPropose, api: Ctx, who: Who) -> PolicyVersion:
    """Propose new rules; with two-person review on they are not in force until another
    account approves them."""
    authz.require(who, "policies.propose", None)
    return _version(_policies(api).propose(body.rules, who.actor, body.reason, source="api"))


@router.get("/api/policies/{version}", response_model=PolicyDetail)
def get_policy(version: Version, api: Ctx, who: Who) -> PolicyDetail:
    """One version with the diff against the policy it was proposed over."""
    authz.require(who, "policies.read", None)
    service = _policies(api)
    found = service.get(version)
    diff = PolicyDiff(**service.diff(version).as_dict())
    return PolicyDetail(**version_json(found), diff=diff)


@router.post("/api/policies/{version}/approve", response_model=PolicyVersion)
def approve_policy(version: Version, api: Ctx, who: Who) -> PolicyVersion:
    """Put a proposal in force (not by its proposer); the gateway applies it from the next
    request on."""
    authz.require(who, "policies.approve", None)
    return _version(_policies(api).approve(version, who.actor))


@router.post("/api/policies/{version}/reject", response_model=PolicyVersion)
def reject_policy(
    version: Version, api: Ctx, who: Who, body: PolicyDecision | None = None
) -> PolicyVersion:
    """Close a proposal without applying it (the body, with a reason, is optional)."""
    authz.require(who, "policies.approve", None)
    reason = None if body is None else body.reason
    return _version(_policies(api).reject(version, who.actor, reason))


@router.post("/api/policies/{version}/rollback", response_model=PolicyVersion, status_code=201)
def rollback_policy(
    version: Version, api: Ctx, who: Who, body: PolicyRollback | None = None
) -> PolicyVersion:
    """Propose the rules of an earlier, once active, version again as a new version: reviewed
    like any proposal (with two-person review on it takes effect only when another account
    approves it). The body, with a reason, is optional."""
    authz.require(who, "policies.propose", None)
    reason = None if body is None else body.reason
    return _version(_policies(api).rollback(version, who.actor, reason))
