"""Accounts (owners only, SPEC §5): list, read, create with a one-time password, change roles,
disable or enable. The account service records every change in the audit trail."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from signalvault.console import iso
from signalvault.control.accounts.checks import check_roles
from signalvault.control.accounts.principal import Principal
from signalvault.control.api import authz
from signalvault.control.api.deps import Context, context, principal
from signalvault.control.api.models import (
    AccountCreate,
    AccountCreated,
    AccountList,
    AccountOut,
    AccountUpdate,
)
from signalvault.errors import NotFound
from signalvault.store.account_queries import Account

router = APIRouter(tags=["accounts"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]
AccountId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def account_out(account: Account) -> AccountOut:
    return AccountOut(
        id=account.id,
        email=account.email,
        roles=dict(account.roles),
        disabled=account.is_disabled,
        created_at=iso(account.created_at),
        created_by=account.created_by,
        disabled_at=iso(account.disabled_at),
        disabled_by=account.disabled_by,
        must_change_password=account.password_changed_at is None,
    )


@router.get("/api/accounts", response_model=AccountList)
def list_accounts(api: Ctx, who: Who) -> AccountList:
    authz.require(who, "accounts", None)
    return AccountList(data=[account_out(a) for a in api.accounts.list_accounts()])


@router.post("/api/accounts", response_model=AccountCreated, status_code=201)
def create_account(body: AccountCreate, api: Ctx, who: Who) -> AccountCreated:
    """Create an account; the answer carries its generated one-time password, never again."""
    authz.require(who, "accounts", None)
    account, password = api.accounts.create_account(body.email, _roles(body.roles), who.actor)
    if password is None:  # the service generates one whenever none is given
        raise RuntimeError("the account service returned no one-time password")
    return AccountCreated(**account_out(account).model_dump(), one_time_password=password)


@router.get("/api/accounts/{account_id}", response_model=AccountOut)
def get_account(account_id: AccountId, api: Ctx, who: Who) -> AccountOut:
    authz.require(who, "accounts", None)
    return account_out(_account(api, account_id))


@router.patch("/api/accounts/{account_id}", response_model=AccountOut)
def update_account(account_id: AccountId, body: AccountUpdate, api: Ctx, who: Who) -> AccountOut:
    """Replace roles and/or disable or enable. Disabling ends the account's sessions and
    tokens in the same transaction: its next request is refused."""
    authz.require(who, "accounts", None)
    account = _account(api, account_id)
    roles = None if body.roles is None else _roles(body.roles)
    if roles is not None:
        check_roles(roles)  # bad roles change nothing, not even `disabled`
    # Disable before changing roles and enable after, so a refusal (the last owner) comes
    # before any change.
    if body.disabled is True and not account.is_disabled:
        api.accounts.disable_account(account.id, who.actor)
    if roles is not None:
        api.accounts.set_roles(account.id, roles, who.actor)
    if body.disabled is False and account.is_disabled:
        api.accounts.enable_account(account.id, who.actor)
    return account_out(api.accounts.get_account(account.id))


def _account(api: Context, account_id: str) -> Account:
    """By id only (the service also takes emails, which do not belong in this path)."""
    if "@" in account_id:
        raise NotFound(f"no account {account_id}")
    return api.accounts.get_account(account_id)


def _roles(roles: Mapping[str, str]) -> dict[str | None, str]:
    """The body's roles as the service takes them ("*" is the global role)."""
    return {project: role for project, role in roles.items()}
