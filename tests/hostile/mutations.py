"""Mutations of well-formed request bodies, as an attacker (or a buggy client) would send them:
in the JSON (wrong types, missing and extra fields, deep nesting, very long strings), in the
bytes (truncation, invalid UTF-8, lone surrogate escapes, duplicate keys, garbage) and in the
HTTP request around them (content types, credentials, chunking, odd attribution headers).

`json_requests(path, bodies, key)` turns a strategy of dicts into one of `HttpRequest`s.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import strategies as st

from tests.hostile.harness import HttpRequest
from tests.hostile.shapes import PII, json_values

# Depths around the limits that matter: the gateway's for requests (242) and for what it reads
# from providers (250), orjson's encoder (254) and decoder (1024), Python's recursion limit.
DEPTHS = st.one_of(
    st.sampled_from([2, 64, 241, 242, 243, 249, 250, 251, 254, 255, 300, 999, 1024, 1025]),
    st.integers(1, 1100),
)
INVALID_UTF8 = (
    b"\xff",
    b"\xc3",
    b"\xc3(",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xc0\xaf",
    b"\x80",
)
SURROGATES = (rb"\ud800", rb"\udfff", rb"\ud800\u0041", rb"\udc00\ud800", rb"\ud83d")
CONTENT_TYPES = (
    b"application/json; charset=utf-8",
    b"Application/JSON",
    b"text/plain",
    b"application/x-www-form-urlencoded",
    b"multipart/form-data; boundary=x",
    b"application/json, text/plain",
    b"application/jsonx",
    b"application/json; charset=latin-1",
    b"a" * 4000,
)
Path = list[Any]


@st.composite
def _path(draw: st.DrawFn, value: Any, deep: bool = False) -> Path:
    """A random place inside `value`: a list of keys and indexes from the root; mostly near the
    root, sometimes (`deep`: mostly) far down, where OTLP keeps its spans, seven levels deep."""
    path: Path = []
    odds = draw(st.sampled_from([12] if deep else [3, 3, 12]))
    while isinstance(value, dict | list) and value and draw(st.integers(0, odds)) > 0:
        key = draw(st.sampled_from(list(value) if isinstance(value, dict) else range(len(value))))
        path.append(key)
        value = value[key]
    return path


def _get(root: Any, path: Path) -> Any:
    for key in path:
        root = root[key]
    return root


def _put(root: Any, path: Path, value: Any) -> Any:
    if not path:
        return value
    _get(root, path[:-1])[path[-1]] = value
    return root


def _nest(value: Any, depth: int, as_list: bool) -> Any:
    for _ in range(depth):
        value = [value] if as_list else {"content": value}
    return value


@st.composite
def mutated_value(
    draw: st.DrawFn, body: dict[str, Any], at_least: int = 0, deep: bool = False
) -> tuple[Any, list[str]]:
    """`body` with up to three structural mutations; returns it and their names."""
    value: Any = copy.deepcopy(body)
    applied: list[str] = []
    for _ in range(draw(st.integers(at_least, 3))):
        kind = draw(st.sampled_from(["swap", "drop", "extra", "deepen", "long", "pii"]))
        path = draw(_path(value, deep))
        target = _get(value, path)
        if kind == "swap":
            replacement = draw(json_values.filter(lambda v, t=target: type(v) is not type(t)))
            value = _put(value, path, replacement)
        elif kind == "drop" and path:
            del _get(value, path[:-1])[path[-1]]
        elif kind == "extra" and isinstance(target, dict):
            target[draw(st.text(max_size=30))] = draw(json_values)
        elif kind == "deepen":
            leaf = draw(st.sampled_from([target, PII[0], "x"]))
            depth = draw(DEPTHS)
            value = _put(value, path, _nest(leaf, depth, draw(st.booleans())))
            kind = f"deepen{depth}"
        elif kind == "long":
            size = draw(st.sampled_from([10_000, 100_000, 400_000, 600_000]))
            text = ("lorem ipsum " * (size // 12 + 1))[:size] + draw(st.sampled_from(["", PII[0]]))
            value = _put(value, path, text)
        elif kind == "pii":
            value = _put(value, path, draw(st.sampled_from(PII)))
        else:
            continue
        applied.append(kind)
    return value, applied


def _inside_string(body: bytes, draw: st.DrawFn) -> int:
    """A position just inside a JSON string value, or anywhere when there is none."""
    starts = [i + 2 for i in range(len(body) - 1) if body[i : i + 2] == b':"'][:50]
    if starts:
        return draw(st.sampled_from(starts))
    return draw(st.integers(0, len(body)))


@st.composite
def encoded(draw: st.DrawFn, value: Any) -> tuple[bytes, str]:
    """`value` as bytes, maybe broken; returns the bytes and the name of what was done."""
    body = dump(value)
    how = draw(
        st.sampled_from(
            ["plain"] * 6
            + ["pretty", "duplicate", "truncate", "bad_utf8", "surrogate", "bom", "garbage"]
            + ["nul", "non_object", "empty"]
        )
    )
    if how == "pretty" and body.startswith(b"{"):
        body = b'{\n  "_" : 0 ,\n' + body[1:] if body != b"{}" else body
    elif how == "duplicate" and isinstance(value, dict) and value:
        # The same key twice: a parser keeping the first and one keeping the last see
        # different requests. Screening and forwarding must agree on one of them.
        key = draw(st.sampled_from(list(value)))
        first = orjson.dumps(draw(st.sampled_from(PII) | json_values))
        body = b"{" + orjson.dumps(key) + b":" + first + b"," + body[1:]
    elif how == "truncate" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif how in ("bad_utf8", "surrogate"):
        at = _inside_string(body, draw)
        insert = draw(st.sampled_from(INVALID_UTF8 if how == "bad_utf8" else SURROGATES))
        body = body[:at] + insert + body[at:]
    elif how == "bom":
        body = b"\xef\xbb\xbf" + body
    elif how == "garbage":
        body = body + draw(st.binary(min_size=1, max_size=20))
    elif how == "nul":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + b"\x00" + body[at:]
    elif how == "non_object":
        root = st.lists(json_values, max_size=2) | st.text() | st.integers(-(2**63), 2**63 - 1)
        body = orjson.dumps(draw(root))
    elif how == "empty":
        body = b""
    return body, how


def dump(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:  # nested past the encoder: write it out by hand
        return _dump_deep(value)


def _dump_deep(value: Any) -> bytes:
    """JSON text for values nested deeper than orjson writes (no recursion limit of our own)."""
    out: list[bytes] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bytes):
            out.append(item)
        elif isinstance(item, dict):
            parts: list[Any] = [b"{"]
            for index, (key, inner) in enumerate(item.items()):
                parts += [b"," if index else b"", orjson.dumps(key) + b":", inner]
            stack.extend(reversed([*parts, b"}"]))
        elif isinstance(item, list):
            parts = [b"["]
            for index, inner in enumerate(item):
                parts += [b"," if index else b"", inner]
            stack.extend(reversed([*parts, b"]"]))
        else:
            out.append(orjson.dumps(item))
    return b"".join(out)


@st.composite
def credentials(draw: st.DrawFn, key: str) -> list[tuple[bytes, bytes]]:
    choice = draw(st.sampled_from(["bearer"] * 8 + ["x-api-key", "none", "garbage", "bad_sum"]))
    if choice == "bearer":
        return [(b"authorization", b"Bearer " + key.encode())]
    if choice == "x-api-key":
        return [(b"x-api-key", key.encode())]
    if choice == "garbage":
        junk = draw(st.binary(max_size=80))
        return [(b"authorization", _header_safe(b"Bearer " + junk))]
    if choice == "bad_sum":
        return [(b"authorization", b"Bearer " + key[:-2].encode() + b"zz")]
    return []


def _header_safe(raw: bytes) -> bytes:
    """Bytes a header value may carry on the wire (no CR, LF or NUL; visible or obs-text)."""
    return bytes(b if b >= 0x20 and b != 0x7F else 0x2E for b in raw).strip()


@st.composite
def extra_headers(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    if draw(st.booleans()):
        user = draw(st.binary(max_size=600).map(_header_safe) | st.sampled_from([PII[0].encode()]))
        if user:
            headers.append((b"x-signalvault-user", user))
    if draw(st.booleans()):
        session = draw(st.binary(min_size=1, max_size=400).map(_header_safe))
        if session:
            headers.append((b"x-signalvault-session", session))
    if draw(st.booleans()):
        parent = draw(
            st.sampled_from([b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01", b"00-zz", b"-" * 55])
        )
        headers.append((b"traceparent", parent))
    if draw(st.booleans()):
        headers.append((b"anthropic-version", b"2023-06-01"))
    return headers


@st.composite
def json_requests(
    draw: st.DrawFn,
    path: str,
    bodies: st.SearchStrategy[dict[str, Any]],
    key: str,
    deep: bool = False,
    hostile_bodies: bool = False,
) -> HttpRequest:
    """POSTs of `bodies` to `path`, each broken in one layer: its JSON structure (most often,
    so that many reach screening and forwarding), its bytes, or the HTTP request around it.
    `deep`: structural mutations mostly far from the root. `hostile_bodies`: the bodies are
    hostile already (tool calls with odd ids and arguments), so half go as they are."""
    layers = ["structure"] * 3 + ["bytes", "http"] + (["as_is"] * 5 if hostile_bodies else [])
    layer = draw(st.sampled_from(layers))
    value, applied = draw(mutated_value(draw(bodies), 0 if layer == "http" else 1, deep))
    if layer == "as_is":
        value, applied = draw(bodies), []
    body, how = draw(encoded(value)) if layer == "bytes" else (dump(value), "plain")
    headers = [(b"authorization", b"Bearer " + key.encode())]
    content_type: bytes | None = b"application/json"
    method, chunks = "POST", 1
    if layer == "http":
        headers = draw(credentials(key))
        content_type = draw(st.sampled_from([b"application/json"] * 3 + [None, *CONTENT_TYPES]))
        method = draw(st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE"]))
        chunks = draw(st.sampled_from([1, 2, 7]))
    headers += draw(extra_headers())
    if content_type is not None:
        headers.append((b"content-type", content_type))
    label = ",".join([*applied, how, f"ct={(content_type or b'-')[:30].decode()}", method])
    return HttpRequest(method, path, tuple(headers), body, chunks, label)
