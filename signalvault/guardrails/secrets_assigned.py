"""Values assigned to credential names in code, config and command lines, in every common syntax:
`password = "..."`, `PASSWORD=...`, `"token": "..."`, `password: ...`, `--password ...`,
`<password>...</password>`, `key="DbPassword" value="..."`, `put("secret", "...")`, `:=`, `=>`.

The name decides the kind (PASSWORD or GENERIC_SECRET); the value must be a literal, not a
reference (`${VAR}`, `os.environ[...]`, `settings.password`), a placeholder, a mask or a stored
hash. Pure functions of the text; builds on `secrets_checks`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence

from signalvault.guardrails import secrets_checks as chk

# Lower-case substrings that may start a credential name; the name's words then decide.
_STEMS = ("pass", "pw", "secret", "token", "key", "auth", "credential", "bearer")
_PASSWORD_WORDS = frozenset(
    ["password", "passwd", "pass", "pwd", "pw", "pswd", "passphrase", "passcode", "pword"]
)
_SECRET_WORDS = frozenset(
    ["secret", "token", "apikey", "credential", "credentials", "bearer", "authtoken", "secretkey",
     "accesskey", "privatekey", "clientsecret", "auth"]
)  # fmt: skip
# "key" is a credential only with one of these before it: api_key, accessKey, SIGNING_KEY.
_KEY_QUALIFIERS = frozenset(
    ["api", "access", "private", "secret", "signing", "encryption", "master", "client", "app",
     "service", "account", "auth", "session", "storage", "license", "admin", "shared", "hmac"]
)  # fmt: skip
# Words after the credential word that make the name describe one, not hold it.
_META_WORDS = frozenset(
    ["length", "len", "min", "max", "minimum", "maximum", "expiry", "expires", "expire",
     "expiration", "ttl", "timeout", "count", "type", "url", "uri", "endpoint", "path", "file",
     "name", "id", "policy", "hash", "hashed", "digest", "salt", "field", "label", "prompt",
     "hint", "required", "enabled", "reset", "mode", "method", "provider", "version", "limit",
     "size", "format", "header", "param", "regex", "pattern", "lifetime", "strategy", "store",
     "manager", "validator", "strength", "rules", "age", "history", "usage", "used", "cache",
     "dir", "env", "var", "variable", "ref", "source", "error", "message", "msg", "text",
     "title", "description", "placeholder", "help", "fingerprint", "checksum", "less", "prefix",
     "suffix", "sha", "md5", "bcrypt", "algorithm", "algo", "encoding", "location", "changed",
     "confirm", "confirmation", "budget", "tokens", "lookup", "file", "path", "arn", "kind"]
)  # fmt: skip
_NAME_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
# What may follow a name before its value.
_OPERATOR = re.compile(
    r"""(?P<close>["'`\]]{0,2})[ \t]*"""
    r"""(?:(?P<op>:=|=>|->|==|=|:)|(?P<attr>\s+value\s*=)|(?P<arg>\s*,)|(?P<tag>>)|(?P<is>\s+is\b))"""
    r"""[ \t]*"""
)
_FLAG_VALUE = re.compile(r"[ \t]+|=")
_UNQUOTED = re.compile(r"""[^\s;,'"`<>(){}\[\]|]{1,200}""")
_NEXT_PARAM = re.compile(r"&[\w.\-]+=")  # "?token=abc&user=x": the value ends at the next "&"
_QUOTED = {"'": re.compile(r"'((?:[^'\\\n]|\\.){0,200})'"),
           '"': re.compile(r'"((?:[^"\\\n]|\\.){0,200})"'),
           "`": re.compile(r"`([^`\n]{0,200})`")}  # fmt: skip
_ESCAPED_QUOTE = re.compile(r'\\"((?:[^"\\\n]|\\[^"]){0,200})\\"')  # JSON inside a string
# Unquoted code that reads a value from elsewhere: attribute chains, calls, indexing.
_EXPRESSION = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+|[A-Za-z_$][\w.$]*[(\[]")
_TYPE_NAMES = frozenset(
    ["str", "string", "bytes", "int", "bool", "boolean", "optional", "none", "null", "nil",
     "undefined", "true", "false", "any", "secretstr", "char", "object", "text", "varchar",
     "required", "optional[str]", "str | none", "yes", "no", "on", "off", "env"]
)  # fmt: skip

Found = tuple[str, int, int, float]  # kind, start, end, score


def assigned_secrets(
    text: str,
    lowered: str,
    is_generated: Callable[[str], bool],
    covered: Sequence[tuple[int, int]] = (),
) -> list[Found]:
    """Every literal value assigned to a credential name in `text` (`lowered` is its ASCII
    lower-case copy, shared with the other keyword rules). Values inside a `covered` span (a
    credential of a known format, found already) are not judged again."""
    found: list[Found] = []
    seen: set[int] = set()
    for name_start, name_end in _names(text, lowered):
        if name_start in seen:
            continue
        seen.add(name_start)
        # Most credential words in prose assign nothing: look for a value before at the name.
        values = list(_values(text, name_start, name_end))
        kind = _kind(text[name_start:name_end]) if values else None
        if kind is None:
            continue
        for start, end, prose in values:
            if any(s <= start and end <= e for s, e in covered):
                break
            quoted = text[start - 1 : start] in ("'", '"', "`")
            if _is_literal(text[start:end], kind, quoted, prose, is_generated):
                found.append((kind, start, end, 0.8 if kind == "PASSWORD" else 0.75))
            break
    return found


def _names(text: str, lowered: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each identifier holding a credential stem that a value may follow."""
    n = len(text)
    for stem in _STEMS:
        at = lowered.find(stem)
        while at != -1:
            if stem == "key" and not (at and (text[at - 1].isalnum() or text[at - 1] in "_-.")):
                at = lowered.find(stem, at + 3)
                continue  # "key" alone names nothing; only "api_key", "apiKey", "secret.key" do
            end = at + len(stem)
            while end < n and (text[end].isalnum() or text[end] in "_.-"):
                end += 1
            while end > at and text[end - 1] in ".-":
                end -= 1  # "my password." ends a sentence, not a dotted name
            if _may_assign(text, at, end):
                start = at
                while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_-."):
                    start -= 1
                while start < at and text[start] in "-.":
                    start += 1  # "--password": the dashes open a command-line flag
                yield start, end
            at = lowered.find(stem, end)


_ASSIGN_CHARS = frozenset("=:>\"'`],")


def _may_assign(text: str, at: int, end: int) -> bool:
    """A cheap look at what follows a name before any parsing: most credential words in prose
    ("reset your password", "token budget") are followed by neither an operator nor a value."""
    j = end
    while j < len(text) and j - end < 2 and text[j] in " \t":
        j += 1
    if j < len(text) and text[j] in _ASSIGN_CHARS:
        return True
    if text.startswith("is ", j) or text[at - 1 : at] == "<":
        return True
    # "--password VALUE", "Bearer VALUE": the word itself tells.
    space = max(text.rfind(" ", 0, at), text.rfind("\n", 0, at), text.rfind("\t", 0, at))
    return text.startswith("--", space + 1) or text[at:end].lower() == "bearer"


def _kind(name: str) -> str | None:
    """PASSWORD or GENERIC_SECRET for a credential name, None for anything else."""
    words = [w.lower() for w in _NAME_WORD.findall(name)]
    kind = None
    for i, word in enumerate(words):
        if word in _PASSWORD_WORDS:
            kind = "PASSWORD"
        elif word in _SECRET_WORDS or (word == "key" and i and words[i - 1] in _KEY_QUALIFIERS):
            kind = kind or "GENERIC_SECRET"
        elif kind is not None and word in _META_WORDS:
            return None  # password_min_length, token_expiry, api_key_id
        elif word in _META_WORDS and i + 1 < len(words):
            continue  # hash_password is a function; max_tokens is a number: decided later
    return kind


def _values(text: str, name_start: int, name_end: int) -> Iterator[tuple[int, int, bool]]:
    """(start, end, is_prose) of the value assigned to the name ending at `name_end`, if any."""
    # "--password VALUE", and "Bearer VALUE" in an Authorization header.
    flag = text[max(0, name_start - 2) : name_start] == "--" or text[name_start:name_end] in (
        "Bearer",
        "bearer",
    )
    if flag and (sep := _FLAG_VALUE.match(text, name_end)) is not None:
        yield from _value_at(text, sep.end(), quoted_only=False, prose=False)
        return
    op = _OPERATOR.match(text, name_end)
    if op is None:
        return
    if op.group("tag") is not None:
        if text[name_start - 1 : name_start] == "<":  # <password>value</password>
            close = text.find("</", op.end(), op.end() + 200)
            if close > op.end():
                yield op.end(), close, False
        return
    if op.group("arg") is not None and not op.group("close"):
        return  # f(password, x): a variable, not a key string
    quoted_only = op.group("arg") is not None or op.group("attr") is not None
    yield from _value_at(text, op.end(), quoted_only, prose=op.group("is") is not None)


def _value_at(
    text: str, at: int, quoted_only: bool, prose: bool
) -> Iterator[tuple[int, int, bool]]:
    """The quoted or bare value starting at `at` (quotes excluded from the span)."""
    quote = text[at : at + 1]
    if quote in _QUOTED:
        match = _QUOTED[quote].match(text, at)
        if match:
            yield match.start(1), match.end(1), prose
        return
    if text.startswith('\\"', at):
        match = _ESCAPED_QUOTE.match(text, at)
        if match:
            yield match.start(1), match.end(1), prose
        return
    if quoted_only:
        return
    match = _UNQUOTED.match(text, at)
    if match:
        param = _NEXT_PARAM.search(text, at, match.end())
        end = param.start() if param else match.end()
        while end > at and text[end - 1] in ".:":
            end -= 1  # sentence punctuation after a value in prose
        if end > at:
            yield at, end, prose


def _is_literal(
    value: str, kind: str, quoted: bool, prose: bool, is_generated: Callable[[str], bool]
) -> bool:
    """Whether `value` is a credential written out, not a reference, type, mask or sample."""
    if len(value) < (6 if kind == "PASSWORD" else 8) or "  " in value or value.count(" ") > 1:
        return False
    lowered = value.lower()
    if lowered in _TYPE_NAMES or value.isdigit():
        return False
    if chk.is_reference(value) or chk.is_hash(value) or chk.is_placeholder(value):
        return False
    if chk.is_sample_password(value) or (not quoted and _EXPRESSION.fullmatch(value)):
        return False
    letters_only = value.replace("_", "").replace("-", "").replace(" ", "").isalpha()
    if letters_only and (not quoted or value.islower() or prose):
        return False  # a variable (new_password, userPassword) or an English word
    if kind == "PASSWORD" and not prose:
        return True
    # Secret and token values, and anything said in prose, must look made up.
    has_digit = any(c.isdigit() for c in value)
    has_letter = any(c.isalpha() for c in value)
    return (has_digit and has_letter) or is_generated(value)
