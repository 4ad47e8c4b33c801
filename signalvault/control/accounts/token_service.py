"""Personal API tokens (`svadm-...`) of accounts: issued to an enabled account that has chosen
its password, always expiring, listed without secrets, revoked; every change audited. A part of
`AccountService` (it mixes this in), kept apart because tokens are their own lifecycle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from signalvault.config import AccountSettings
from signalvault.control.accounts.api_tokens import display_prefix, generate_token, new_token_id
from signalvault.crypto.gateway_keys import hash_secret
from signalvault.errors import BadRequest, Forbidden, NotFound
from signalvault.store.account_queries import Account, AccountQueries, ApiToken


class PersonalTokens:
    """Token operations over the account service's queries, pepper, clock and audit."""

    settings: AccountSettings
    queries: AccountQueries
    _pepper: bytes
    _clock: Callable[[], float]

    def get_account(self, ref: str) -> Account:
        raise NotImplementedError

    def _audit(self, kind: str, actor: str, details: dict[str, Any]) -> None:
        raise NotImplementedError

    def create_token(
        self, account_id: str, name: str, expires_in: float | None, actor: str
    ) -> tuple[ApiToken, str]:
        """A token for an enabled account; returns it and its secret (shown once). `expires_in`
        is seconds (default `[accounts] token_default_days`, at most `token_max_days`)."""
        account = self.get_account(account_id)
        if account.is_disabled:
            raise BadRequest(f"account {account.email} is disabled")
        if account.password_changed_at is None:
            # A token would outlive the one-time password: its holder chooses a password first.
            raise Forbidden(
                f"account {account.email} still has its one-time password; change it first",
                code="password_change_required",
            )
        name = name.strip()
        if not name or len(name) > 256:
            raise BadRequest("a token needs a name of at most 256 characters", param="name")
        limits = self.settings
        lifetime = limits.token_default_days * 86400 if expires_in is None else expires_in
        if not 0 < lifetime <= limits.token_max_days * 86400:
            raise BadRequest(
                f"a token's lifetime must be positive and at most {limits.token_max_days:g} days",
                param="expires",
            )
        secret = generate_token()
        now = self._clock()
        token = ApiToken(
            id=new_token_id(),
            account_id=account.id,
            name=name,
            prefix=display_prefix(secret),
            created_at=now,
            expires_at=now + lifetime,
            revoked_at=None,
            last_used_at=None,
        )
        self.queries.insert_token(token, hash_secret(self._pepper, secret))
        self._audit(
            "token_created",
            actor,
            {
                "account": account.id,
                "token": token.id,
                "name": name,
                "prefix": token.prefix,
                "expires_at": token.expires_at,
            },
        )
        return token, secret

    def get_token(self, token_id: str) -> ApiToken:
        token = self.queries.get_token(token_id)
        if token is None:
            raise NotFound(f"no token {token_id}")
        return token

    def list_tokens(self, account_id: str | None = None) -> list[ApiToken]:
        """Tokens of one account (or all), oldest first, never their secrets."""
        return self.queries.list_tokens(account_id)

    def revoke_token(self, token_id: str, actor: str) -> ApiToken:
        """Revoke a token; refused from the next request on. Raises NotFound, BadRequest."""
        token = self.get_token(token_id)
        if not self.queries.revoke_token(token.id, self._clock()):
            raise BadRequest(f"token {token.id} is already revoked")
        self._audit(
            "token_revoked",
            actor,
            {
                "account": token.account_id,
                "token": token.id,
                "name": token.name,
                "prefix": token.prefix,
            },
        )
        return self.get_token(token.id)
