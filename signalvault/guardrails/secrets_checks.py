"""Validators confirming a regex hit is a credential: checksums, JWT headers, entropy, placeholders.

Pure functions over the matched value; imports nothing from signalvault.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import zlib
from collections import Counter

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SAMPLE_PASSWORDS = frozenset(
    {
        "pass",
        "passwd",
        "password",
        "pwd",
        "secret",
        "tiger",
        "changeme",
        "test",
        "example",
        "changeit",
        "admin",
        "root",
        "letmein",
        "qwerty",
        "123456",
        "12345678",
        "password1",
        "passw0rd",
        "p@ssw0rd",
        "p@ssword",
        "welcome",
        "default",
        "dummy",
        "foobar",
        "secret123",
        "password123",
        "testing",
        "sample",
        "none",
        "null",
        "undefined",
        "hunter2",
    }
)

# Words that only occur in documentation, templates and redacted samples, in lower or upper case
# (not mixed: a random token spells "yOur" far more often than "your"). The AWS documentation
# keys (AKIAIOSFODNN7EXAMPLE, wJalr...EXAMPLEKEY) land here: they are public, and blocking
# every prompt that quotes the AWS docs helps nobody.
_PLACEHOLDER_WORDS = (
    "example",
    "xxxx",
    "****",
    "....",
    "your",
    "placeholder",
    "redacted",
    "changeme",
    "dummy",
    "sample",
    "insert",
    "replace",
    "<",
    ">",
    "${",
    "{{",
    "%s",
    "abcdefghij",
    "1234567890",
    "replace_me",
    "replace-me",
    "changeit",
    "todo",
    "tbd",
    "fixme",
    "_here",
    "-here",
)
_PLACEHOLDER = re.compile(
    "|".join(
        re.escape(w) for w in _PLACEHOLDER_WORDS + tuple(w.upper() for w in _PLACEHOLDER_WORDS)
    )
)
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def base62_encode(value: int, width: int) -> str:
    """Base62 (digits, upper, lower), most significant digit first, left-padded with "0"."""
    digits = ""
    while value:
        value, rem = divmod(value, 62)
        digits = BASE62[rem] + digits
    return digits.rjust(width, "0")


def shannon_entropy(value: str) -> float:
    """Bits per character of `value` under its own character frequencies."""
    if not value:
        return 0.0
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in Counter(value).values())


def is_placeholder(value: str) -> bool:
    """True for documentation examples, templates and low-variety fillers (sk-xxxx, aaaa...)."""
    if _PLACEHOLDER.search(value):
        return True
    # A random token of 16+ characters uses many distinct symbols; "ddddd..." or "abab..." does not.
    body = _NOT_ALNUM.sub("", value)
    return len(body) >= 12 and len(set(body)) < 6


def is_random_token(value: str, min_entropy: float = 3.0) -> bool:
    """Entropy and charset check for values that carry no checksum of their own."""
    if is_placeholder(value):
        return False
    return shannon_entropy(value) >= min_entropy


def is_github_token(value: str) -> bool:
    """Classic GitHub tokens: prefix_ + 30 base62 characters + base62(CRC32(those 30)) in 6."""
    body = value[4:]
    if len(body) != 36:
        return False
    return base62_encode(zlib.crc32(body[:30].encode()), 6) == body[30:]


def is_signalvault_key(value: str) -> bool:
    """`sv-<env>-<body43><crc6>`, crc = base62(CRC32 of everything before it)."""
    head, crc = value[:-6], value[-6:]
    return base62_encode(zlib.crc32(head.encode()), 6) == crc


def _b64url_json(segment: str) -> object:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded))


def is_jwt(value: str) -> bool:
    """The first segment must be base64url JSON with an `alg` (JWS) or `enc` (JWE) member."""
    try:
        header = _b64url_json(value.split(".", 1)[0])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and ("alg" in header or "enc" in header)


def is_private_key_block(value: str) -> bool:
    """A PEM/OpenSSH block is a secret only if it carries key material, not "..." or a template."""
    body = re.sub(r"-----[A-Z0-9 ]+-----", "", value)
    body = body.replace("\\n", "").replace("\\r", "")
    material = re.sub(r"[^A-Za-z0-9+/=]", "", body)
    return len(material) >= 16 and not is_placeholder(material)


# Values that point at a secret kept elsewhere: ${VAR}, $VAR, %VAR%, {{ .Values.x }}, %(x)s,
# <password>, !vault ..., vault:..., arn:..., secretRef.
_REFERENCE = re.compile(
    r"\$\{[^}]*\}?|\$\(|\$[A-Za-z_][A-Za-z0-9_]*$|%[A-Za-z_][\w.]*%|%\(\w+\)s|\{\{|\{%|"
    r"<[^<>]*>?$|![A-Za-z]|(?:vault|arn|secretsmanager|ssm|env|file|op|sm|awssm|gcpsm):",
)
# Stored password hashes of known formats: what a database keeps instead of the password.
_HASH = re.compile(
    r"\$(?:2[abxy]?|1|5|6|y|gy|7|argon2(?:id|i|d)|scrypt|pbkdf2(?:-sha\d+)?|sha1|md5)\$\S{8,}"
    r"|(?:pbkdf2_sha\d+|bcrypt(?:_sha256)?|argon2|sha1|md5|scrypt)\$\S{8,}"
    r"|\{(?:SSHA|SHA|SSHA256|SSHA512|CRYPT|MD5|SMD5|PBKDF2[\w-]*)\}\S{8,}"
    r"|(?:sha1|sha256|sha384|sha512|md5):[0-9a-fA-F]{32,}",
    re.IGNORECASE,
)


def is_reference(value: str) -> bool:
    """True for values that name a secret kept elsewhere (`${DB_PASSWORD}`, `%TOKEN%`)."""
    return _REFERENCE.match(value) is not None


def is_hash(value: str) -> bool:
    """True for stored hashes of known formats (bcrypt, argon2, crypt, LDAP, Django)."""
    return _HASH.match(value) is not None


def is_password(value: str) -> bool:
    """Passwords have no charset rule; drop templates, masks, env references and code."""
    if len(value) < 3 or value.startswith(("$", "%", "{", "<", "*")):
        return False
    if any(c in value for c in "()[]") or value.endswith(","):
        return False  # `password=auth[1])`, `pwd=pwd,`: a keyword argument, not a value
    if is_reference(value) or is_hash(value) or is_placeholder(value):
        return False
    lowered = value.lower()
    return not any(word in lowered for word in ("xxxx", "****", "<", "${", "{{", "your"))


def is_sample_password(value: str) -> bool:
    """Passwords from documentation (`user:pass@`, Oracle's scott/tiger): reported below 0.5."""
    return value.lower() in _SAMPLE_PASSWORDS


def url_password(value: str) -> str:
    """The password part of scheme://user:password@host ("" if there is none)."""
    userinfo = value.split("://", 1)[-1].rsplit("@", 1)[0]
    return userinfo.split(":", 1)[1] if ":" in userinfo else ""


def is_random_hex(value: str) -> bool:
    """Hex keys (Datadog, Mailgun, Cloudflare...) mix digits and a-f; hashes of "" do not count."""
    return is_random_token(value, 2.8) and any(c.isdigit() for c in value)


def has_mixed_charset(value: str) -> bool:
    """Generated tokens mix at least two of: lower case, upper case, digits."""
    classes = (
        any(c.islower() for c in value),
        any(c.isupper() for c in value),
        any(c.isdigit() for c in value),
    )
    return sum(classes) >= 2
