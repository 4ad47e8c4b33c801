"""Personal API tokens: the `svadm-...` secret format with a checksum, so secret scanners can
recognise a leaked one, and the display prefix shown in listings. Stored only as a keyed hash
(keys.hash_secret, the gateway-key pepper): a 256-bit random secret needs no slow hash.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets

from signalvault.crypto.gateway_keys import base62, checksum

PREFIX = "svadm-"
TOKEN_PATTERN = re.compile(r"svadm-([0-9A-Za-z]{43})([0-9A-Za-z]{6})")


def _checksum(body: str) -> str:
    return checksum(PREFIX + body)


def generate_token() -> str:
    body = base62(int.from_bytes(os.urandom(32), "big"), 43)
    return PREFIX + body + _checksum(body)


def is_well_formed(secret: str) -> bool:
    match = TOKEN_PATTERN.fullmatch(secret)
    return match is not None and hmac.compare_digest(_checksum(match.group(1)), match.group(2))


def display_prefix(secret: str) -> str:
    """`svadm-` plus six characters: enough to tell tokens apart, useless to an attacker."""
    return secret[: len(PREFIX) + 6]


def new_token_id() -> str:
    return "tok_" + secrets.token_hex(8)
