"""Password hashing (Argon2id through argon2-cffi, explicit parameters) and the password policy.

Passwords are low-entropy, so unlike token secrets they get a memory-hard hash; a stored hash
made with older parameters is replaced at the next successful login.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from signalvault.config import AccountSettings
from signalvault.errors import BadRequest

MAX_PASSWORD_CHARS = 1024  # hashing cost does not grow with length, but nobody needs more


class Passwords:
    """Hashes and checks passwords with one set of Argon2id parameters."""

    def __init__(
        self,
        *,
        time_cost: int,
        memory_kib: int,
        parallelism: int,
        min_length: int = 12,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self.min_length = min_length
        self._dummy: str | None = None

    @classmethod
    def from_settings(cls, settings: AccountSettings) -> Passwords:
        return cls(
            time_cost=settings.password_time_cost,
            memory_kib=settings.password_memory_kib,
            parallelism=settings.password_parallelism,
            min_length=settings.password_min_length,
        )

    def hash(self, password: str) -> str:
        """An Argon2id PHC string (`$argon2id$v=19$m=...`) with a fresh random salt."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True if the hash was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def verify_nothing(self, password: str) -> None:
        """Spend the time of one verification when there is no account, so the answer's timing
        does not tell whether an email is registered."""
        if self._dummy is None:
            self._dummy = self.hash(secrets.token_urlsafe(16))
        self.verify(self._dummy, password)

    def check_policy(self, password: str, email: str) -> None:
        """Raises BadRequest (naming the rule, never the password) if it is not acceptable."""
        if len(password) < self.min_length:
            raise BadRequest(
                f"the password must have at least {self.min_length} characters", param="password"
            )
        if len(password) > MAX_PASSWORD_CHARS:
            raise BadRequest(
                f"the password must have at most {MAX_PASSWORD_CHARS} characters", param="password"
            )
        if not password.strip():
            raise BadRequest("the password must not be only spaces", param="password")
        if password.strip().lower() == email.lower():
            raise BadRequest("the password must not be the email address", param="password")


def generate_password() -> str:
    """A one-time password of 144 random bits (24 URL-safe characters)."""
    return secrets.token_urlsafe(18)
