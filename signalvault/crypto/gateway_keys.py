"""Gateway API keys: the `sv-<env>-...` secret format, its checksum, and the peppered hash.

A secret is shown once; the store keeps only HMAC-SHA-256(pepper, secret). A keyed hash is
right for 256-bit random secrets (no brute force to slow down) and costs ~2 µs per request.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import os
import re
import secrets
import time
import zlib
from dataclasses import dataclass

from signalvault.errors import ConfigError

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BODY_CHARS = 43  # 256 random bits in base62
CHECKSUM_CHARS = 6  # CRC32 in base62, so secret scanners can tell a real key from noise
ENV_PATTERN = re.compile(r"[a-z0-9]{1,16}")
SECRET_PATTERN = re.compile(r"sv-([a-z0-9]{1,16})-([0-9A-Za-z]{43})([0-9A-Za-z]{6})")


def base62(number: int, width: int) -> str:
    """`number` in base 62, left-padded with zeros to `width` characters."""
    digits = []
    while number:
        number, rem = divmod(number, 62)
        digits.append(BASE62[rem])
    return "".join(reversed(digits)).rjust(width, "0")


def checksum(prefix_and_body: str) -> str:
    """CRC32 of the text in base 62: lets secret scanners tell a real key from noise."""
    return base62(zlib.crc32(prefix_and_body.encode()), CHECKSUM_CHARS)


def check_environment(environment: str) -> str:
    """Validate an environment name (`prod`, `staging`, `dev`, ...)."""
    if not ENV_PATTERN.fullmatch(environment):
        raise ConfigError("environment must be 1-16 lower-case letters or digits")
    return environment


def generate_secret(environment: str) -> str:
    check_environment(environment)
    body = base62(int.from_bytes(os.urandom(32), "big"), BODY_CHARS)
    head = f"sv-{environment}-{body}"
    return head + checksum(head)


def is_well_formed(secret: str) -> bool:
    """True if `secret` has the SignalVault key shape and a matching checksum."""
    match = SECRET_PATTERN.fullmatch(secret)
    if match is None:
        return False
    head = f"sv-{match.group(1)}-{match.group(2)}"
    return hmac.compare_digest(checksum(head), match.group(3))


def display_prefix(secret: str) -> str:
    """The part of a secret shown in listings: environment plus six characters of the body."""
    environment, body = secret.split("-", 2)[1:]
    return f"sv-{environment}-{body[:6]}"


def hash_secret(pepper: bytes, secret: str) -> bytes:
    return hmac.new(pepper, secret.encode(), hashlib.sha256).digest()


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class GatewayKey:
    """A gateway key's metadata (never the secret)."""

    id: str
    name: str
    project: str
    environment: str
    prefix: str
    models: tuple[str, ...]
    rpm: int | None
    tpm: int | None
    expires_at: float | None
    revoked_at: float | None
    created_at: float
    created_by: str
    last_used_at: float | None = None
    budget_tokens: int | None = None  # tokens per calendar month (UTC)
    rotated_at: float | None = None  # the last rotation
    grace_until: float | None = None  # the previous secret works until then
    previous_prefix: str | None = None  # the previous secret's prefix

    def is_expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at

    def is_in_grace(self, now: float | None = None) -> bool:
        """True while a rotation's previous secret still works."""
        return self.grace_until is not None and (now or time.time()) < self.grace_until

    def allows_model(self, model: str) -> bool:
        """An empty model list allows every model the gateway routes."""
        return not self.models or any(fnmatch.fnmatchcase(model, g) for g in self.models)


def parse_duration(text: str) -> float:
    """Seconds in `30d`, `12h`, `15m`, `45s` (a bare number is seconds)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if match is None:
        raise ConfigError(f"not a duration: {text!r} (use e.g. 30d, 12h, 15m)")
    scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    return float(match.group(1)) * scale
