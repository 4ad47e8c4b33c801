"""Projects: list those the caller has a role in, read one with what refers to it, register one
(global owners and admins), change its description. The registry audits every change."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from signalvault.console import iso
from signalvault.control.accounts.principal import Principal
from signalvault.control.api import authz
from signalvault.control.api.deps import Context, context, principal
from signalvault.control.api.models import (
    KeyCounts,
    ProjectCreate,
    ProjectDetail,
    ProjectMember,
    ProjectOut,
    ProjectPage,
    ProjectRetention,
    ProjectUpdate,
)
from signalvault.control.projects import MAX_NAME, ProjectRegistry, role_holders
from signalvault.errors import NotFound
from signalvault.store.project_queries import Project

router = APIRouter(tags=["projects"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]
Name = Annotated[str, Path(min_length=1, max_length=MAX_NAME)]


def _registry(api: Context) -> ProjectRegistry:
    return ProjectRegistry(api.store, api.trail)


def _is_visible(who: Principal, name: str) -> bool:
    """A project role shows that project; a global role shows them all."""
    return authz.role_allows(who, "projects.read", name)


def project_out(project: Project) -> ProjectOut:
    return ProjectOut(
        name=project.name,
        description=project.description,
        created_at=iso(project.created_at),
        created_by=project.created_by,
        updated_at=iso(project.updated_at),
        updated_by=project.updated_by,
    )


def _detail(api: Context, who: Principal, name: str) -> ProjectDetail:
    """The detail, each part only if the caller's role in the project may read that part
    elsewhere in the API (a developer counts only their own keys)."""
    own = who.actor if authz.is_own_only(who, name) else None
    found = _registry(api).detail(name, api.settings.retention, keys_created_by=own)
    keys = None
    if authz.role_allows(who, "keys.read", name):
        keys = {
            env: KeyCounts(active=c.active, revoked=c.revoked, expired=c.expired)
            for env, c in found.keys.items()
        }
    retention = None
    if authz.role_allows(who, "retention.read", name):
        retention = ProjectRetention(days=found.retention.days, source=found.retention.source)
    members = None
    if authz.role_allows(who, "accounts", None):
        members = [
            ProjectMember(account_id=h.account_id, email=h.email, role=h.role, disabled=h.disabled)
            for h in role_holders(api.accounts.list_accounts(), name)
        ]
    holds = found.legal_holds if authz.role_allows(who, "holds.read", name) else None
    return ProjectDetail(
        **project_out(found.project).model_dump(),
        keys=keys,
        retention=retention,
        legal_holds=holds,
        accounts=members,
    )


def _visible(api: Context, who: Principal, name: str) -> Project:
    if not _is_visible(who, name):
        raise NotFound(f"no project {name}")
    return _registry(api).get(name)


@router.get("/api/projects", response_model=ProjectPage)
def list_projects(
    api: Ctx,
    who: Who,
    cursor: Annotated[str | None, Query(max_length=MAX_NAME)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ProjectPage:
    """Registered projects the caller has a role in (all of them for a global role), by name.
    Follow `next_cursor` until it is null."""
    # Without a global role, only the projects named in the caller's roles can be visible.
    names = None if None in who.roles else frozenset(p for p in who.roles if p is not None)
    page = _registry(api).list_page(cursor, limit + 1, names)
    visible = [p for p in page[:limit] if _is_visible(who, p.name)]
    next_cursor = page[limit - 1].name if len(page) > limit else None
    return ProjectPage(data=[project_out(p) for p in visible], next_cursor=next_cursor)


@router.post("/api/projects", response_model=ProjectDetail, status_code=201)
def create_project(body: ProjectCreate, api: Ctx, who: Who) -> ProjectDetail:
    """Register a project (409 if it exists). Keys, roles and retention overrides that name an
    unregistered project register it too."""
    authz.require(who, "projects.write", None)
    project = _registry(api).create(body.name, body.description, who.actor)
    return _detail(api, who, project.name)


@router.get("/api/projects/{name:path}", response_model=ProjectDetail)
def get_project(name: Name, api: Ctx, who: Who) -> ProjectDetail:
    return _detail(api, who, _visible(api, who, name).name)


@router.patch("/api/projects/{name:path}", response_model=ProjectDetail)
def update_project(name: Name, body: ProjectUpdate, api: Ctx, who: Who) -> ProjectDetail:
    """Change the description (owners and admins of the project; audited with before/after)."""
    project = _visible(api, who, name)
    authz.require(who, "projects.write", project.name)
    _registry(api).update(project.name, body.description, who.actor)
    return _detail(api, who, project.name)
