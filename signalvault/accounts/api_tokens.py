"""Personal API tokens: the `svadm-...` secret format with a checksum, so secret scanners can
recognise a leaked one, and the display prefix shown in listings. Stored only as a keyed hash
(keys.hash_secret, the gateway-key pepper): a 256-bit random secret needs no slow hash.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import zlib

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PREFIX = "svadm-"
TOKEN_PATTERN = re.compile(r"svadm-([0-9A-Za-z]{43})([0-9A-Za-z]{6})")


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, rem = divmod(number, 62)
        digits.append(BASE62[rem])
    return "".join(reversed(digits)).rjust(width, "0")


def _checksum(body: str) -> str:
    return _base62(zlib.crc32((PREFIX + body).encode()), 6)


def generate_token() -> str:
    body = _base62(int.from_bytes(os.urandom(32), "big"), 43)
    return PREFIX + body + _checksum(body)


def is_well_formed(secret: str) -> bool:
    match = TOKEN_PATTERN.fullmatch(secret)
    return match is not None and hmac.compare_digest(_checksum(match.group(1)), match.group(2))


def display_prefix(secret: str) -> str:
    """`svadm-` plus six characters: enough to tell tokens apart, useless to an attacker."""
    return secret[: len(PREFIX) + 6]


def new_token_id() -> str:
    return "tok_" + secrets.token_hex(8)
