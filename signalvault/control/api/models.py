"""Request and response bodies of the admin API (the OpenAPI document is generated from these)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from signalvault.control.projects import MAX_DESCRIPTION, NAME_RULE, is_project_name

# Limits that keep stored values representable (SQLite INTEGER, dates before year 9999).
MAX_COUNT = 2**53
MAX_SECONDS = 100 * 365 * 86400.0
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def _storable(value: str) -> str:
    """Refuse control characters and lone surrogates (JSON escapes can carry them; they cannot
    be stored as UTF-8 or shown safely)."""
    if _UNSTORABLE.search(value):
        raise ValueError("control characters and unpaired surrogates are not allowed")
    return value


Text = Annotated[str, AfterValidator(_storable)]


def _project_name(value: str) -> str:
    """The project name rule (signalvault.control.projects), as a 422 naming the field."""
    if not is_project_name(value):
        raise ValueError(NAME_RULE)
    return value


ProjectName = Annotated[str, AfterValidator(_project_name)]


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    message: str
    code: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class LoginRequest(RequestBody):
    email: Text = Field(min_length=1, max_length=320)
    password: Text = Field(min_length=1, max_length=1024)


class LoginResponse(BaseModel):
    csrf_token: str
    must_change_password: bool = Field(
        default=False,
        description="The account holds a generated one-time password: until it is changed "
        "(POST /api/auth/password) every other route answers 403 password_change_required.",
    )


class PasswordChange(RequestBody):
    current_password: Text = Field(min_length=1, max_length=1024)
    new_password: Text = Field(min_length=1, max_length=1024)


class PasswordChanged(BaseModel):
    status: Literal["ok"] = "ok"
    sessions_ended: int = Field(
        description="The account's other sessions, ended; the session that asked stays."
    )


class TokenRequest(RequestBody):
    name: Text = Field(min_length=1, max_length=200)
    expires_seconds: float | None = Field(default=None, gt=0, le=366 * 86400)


class TokenCreated(BaseModel):
    id: str
    token: str = Field(description="The token secret, shown only this once.")
    expires_at: str | None


class TokenOut(BaseModel):
    """A personal API token's metadata: never its secret or hash."""

    id: str
    account_id: str
    name: str
    prefix: str
    status: Literal["active", "revoked", "expired"]
    created_at: str | None
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class TokenList(BaseModel):
    data: list[TokenOut]
    next_cursor: str | None = Field(default=None, description="Always null: the list is whole.")


class Done(BaseModel):
    status: Literal["ok"] = "ok"


class Key(BaseModel):
    """A gateway key's metadata; the secret is never returned after creation."""

    id: str
    name: str
    project: str
    environment: str
    prefix: str
    models: list[str]
    rpm: int | None
    tpm: int | None
    budget_tokens: int | None
    expires_at: str | None
    revoked_at: str | None
    created_at: str | None
    created_by: str
    last_used_at: str | None
    status: Literal["active", "revoked", "expired"]


class KeyPage(BaseModel):
    data: list[Key]
    next_cursor: str | None


class KeyCreate(RequestBody):
    name: Text = Field(min_length=1, max_length=200)
    environment: str = Field(pattern=r"^[a-z0-9]{1,16}$")
    project: ProjectName = "default"
    models: list[Annotated[Text, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=100
    )
    rpm: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    tpm: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    budget_tokens: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    expires_seconds: float | None = Field(default=None, gt=0, le=MAX_SECONDS)


class KeyCreated(Key):
    secret: str = Field(description="The key secret, shown only this once.")


class KeyRotate(RequestBody):
    grace_seconds: float = Field(
        default=86400.0, ge=0, le=30 * 86400, description="How long the old secret still works."
    )


class KeyRotated(KeyCreated):
    previous_prefix: str | None
    grace_until: str | None = Field(description="The old secret works until then.")


class ProviderCredential(BaseModel):
    """A stored provider credential, masked: the secret itself is never returned."""

    provider: str
    environment: str | None
    masked: str
    master_key_id: str
    created_at: str | None
    created_by: str
    rotated_at: str | None
    rotated_by: str | None


class ProviderCredentialList(BaseModel):
    data: list[ProviderCredential]


class ProviderCredentialSet(RequestBody):
    api_key: str = Field(min_length=1, max_length=4096, description="Stored encrypted; write-only.")
    environment: str | None = Field(default=None, pattern=r"^[a-z0-9]{1,16}$")


class PolicyVersion(BaseModel):
    version: int
    status: str
    digest: str
    source: str
    base_version: int | None
    rollback_of: int | None
    proposed_by: str
    proposed_at: str | None
    reason: str | None
    decided_by: str | None
    decided_at: str | None
    decision_reason: str | None
    superseded_at: str | None
    rules: list[dict[str, Any]]


class PolicyChange(BaseModel):
    name: str
    change: Literal["added", "removed", "changed"]
    fields: list[str]


class PolicyDiff(BaseModel):
    base_version: int | None
    version: int
    changes: list[PolicyChange]
    reordered: bool
    text: str


class PolicyDetail(PolicyVersion):
    diff: PolicyDiff


class PolicyList(BaseModel):
    active_version: int | None
    data: list[PolicyVersion]


class PolicyPropose(RequestBody):
    rules: list[dict[str, Any]] = Field(max_length=500)
    reason: Text | None = Field(default=None, max_length=1000)


class PolicyDecision(RequestBody):
    reason: Text | None = Field(default=None, max_length=1000)


class PolicyRollback(RequestBody):
    reason: Text | None = Field(
        default=None, max_length=1000, description='Default: "rollback to version N".'
    )


Role = Literal["owner", "admin", "security", "auditor", "developer", "viewer"]
Roles = Annotated[
    dict[Annotated[Text, Field(min_length=1, max_length=128)], Role],
    Field(min_length=1, max_length=100, description='Project -> role; "*" is the global role.'),
]


class AccountOut(BaseModel):
    """An account's metadata: never a password or its hash."""

    id: str
    email: str
    roles: dict[str, str]
    disabled: bool
    created_at: str | None
    created_by: str
    disabled_at: str | None
    disabled_by: str | None
    must_change_password: bool


class AccountList(BaseModel):
    data: list[AccountOut]


class AccountCreate(RequestBody):
    email: Text = Field(min_length=3, max_length=320)
    roles: Roles


class AccountCreated(AccountOut):
    one_time_password: str = Field(
        description="Generated password, shown only this once; it must be changed at first use."
    )


class AccountUpdate(RequestBody):
    roles: Roles | None = None
    disabled: bool | None = None


class ProjectOut(BaseModel):
    name: str
    description: str
    created_at: str | None
    created_by: str
    updated_at: str | None
    updated_by: str | None


class SettingOut(BaseModel):
    """One setting as the deployment runs it. A secret's value is never returned."""

    name: str = Field(description="`<section>.<name>`, `providers.<provider>.<name>`, ...")
    value: Any = Field(description="The effective value; always null for a secret.")
    is_secret: bool
    is_set: bool = Field(description="A value is present (all that is said about a secret).")
    source: Literal["default", "file", "env", "runtime"] | None = Field(
        description="Where the value comes from; null if unknown (settings built in code)."
    )
    is_runtime: bool = Field(description="PATCH /api/settings may change it.")
    config_value: Any = Field(description="With source `runtime`: the configured value.")
    updated_at: str | None
    updated_by: str | None


class ProjectPage(BaseModel):
    data: list[ProjectOut]
    next_cursor: str | None


class KeyCounts(BaseModel):
    active: int
    revoked: int
    expired: int


class ProjectRetention(BaseModel):
    days: int = Field(description="Days its records are kept; 0 keeps them forever.")
    source: Literal["project", "default"]


class ProjectMember(BaseModel):
    account_id: str
    email: str
    role: str
    disabled: bool


class ProjectDetail(ProjectOut):
    """A project and what refers to it. A part the caller's role may not read is null."""

    keys: dict[str, KeyCounts] | None = Field(
        description="Gateway keys per environment (developers: their own); needs keys.read."
    )
    retention: ProjectRetention | None = Field(description="Needs retention.read.")
    legal_holds: int | None = Field(description="Active holds on it; needs holds.read.")
    accounts: list[ProjectMember] | None = Field(
        description="Accounts with a role in this project; only for the accounts permission."
    )


class ProjectCreate(RequestBody):
    name: ProjectName
    description: Text = Field(default="", max_length=MAX_DESCRIPTION)


class ProjectUpdate(RequestBody):
    description: Text = Field(max_length=MAX_DESCRIPTION)


class RuntimeSettingOut(BaseModel):
    name: str
    takes_effect: str


class SettingsView(BaseModel):
    data: list[SettingOut]
    runtime_settings: list[RuntimeSettingOut]


class SettingChange(BaseModel):
    name: str
    before: Any
    after: Any
    is_reset: bool = Field(description="The override was removed: the configured value applies.")


class SettingsChanged(BaseModel):
    changes: list[SettingChange]
