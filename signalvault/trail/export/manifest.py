"""The signed manifest beside every export, and checking an export against it.

The signature covers the canonical JSON of the manifest without its `signature` field (keys
sorted, no whitespace), so anyone with the public key printed in it can check it elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from signalvault.trail.export.formats import FORMATS, MalformedExport, count_records
from signalvault.trail.signing import Signer, public_key_id, verify_signature

MANIFEST_VERSION = 1
SUFFIX = ".manifest.json"
REQUIRED = ("format", "record_count", "sha256", "size_bytes", "signing_key", "signature")


def manifest_path(export_file: Path) -> Path:
    return export_file.with_name(export_file.name + SUFFIX)


def canonical(manifest: dict[str, Any]) -> bytes:
    """The signed bytes: the manifest minus its signature, keys sorted, compact."""
    unsigned = {name: value for name, value in manifest.items() if name != "signature"}
    return orjson.dumps(unsigned, option=orjson.OPT_SORT_KEYS)


def sign(manifest: dict[str, Any], signer: Signer) -> dict[str, Any]:
    """The manifest with the signing key's id and public key and its signature added."""
    signed = {
        **manifest,
        "manifest_version": MANIFEST_VERSION,
        "signing_key": {
            "algorithm": "Ed25519",
            "id": signer.key_id,
            "public_key": signer.public_b64,
        },
    }
    signed["signature"] = base64.b64encode(signer.sign(canonical(signed))).decode()
    return signed


def render(manifest: dict[str, Any]) -> bytes:
    return orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


@dataclass(frozen=True, slots=True)
class Check:
    """One verification step: its name, whether it passed, and what was found."""

    name: str
    is_ok: bool
    detail: str


def load(path: Path) -> dict[str, Any]:
    """A manifest file's JSON.

    Raises:
        ValueError: unreadable, not JSON, or missing a required field (the message says which).
    """
    try:
        manifest = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read the manifest {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError:
        raise ValueError(f"the manifest {path} is not JSON") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"the manifest {path} is not a JSON object")
    missing = [name for name in REQUIRED if name not in manifest]
    if missing:
        raise ValueError(f"the manifest {path} lacks {', '.join(missing)}")
    return manifest


def check_signature(manifest: dict[str, Any]) -> Check:
    key = manifest.get("signing_key")
    try:
        public_raw = base64.b64decode(key["public_key"], validate=True)  # type: ignore[index]
        signature = base64.b64decode(manifest["signature"], validate=True)
        key_id = key["id"]  # type: ignore[index]
    except (TypeError, KeyError, binascii.Error):
        return Check("signature", False, "the signing key or signature field is malformed")
    if public_key_id(public_raw) != key_id:
        return Check("signature", False, f"key id {key_id} does not match the public key")
    if not verify_signature(public_raw, signature, canonical(manifest)):
        return Check("signature", False, "the signature does not match the manifest (altered?)")
    return Check("signature", True, f"valid Ed25519 signature by key {key_id}")


def check_file(manifest: dict[str, Any], path: Path) -> list[Check]:
    """The file's size and SHA-256, then its record count, against the manifest."""
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        return [Check("sha256", False, f"cannot read {path}: {exc.strerror}")]
    checks = []
    if digest.hexdigest() == manifest["sha256"] and size == manifest["size_bytes"]:
        checks.append(Check("sha256", True, f"{size} bytes, sha256 {digest.hexdigest()}"))
    else:
        checks.append(
            Check(
                "sha256",
                False,
                f"the file has {size} bytes and sha256 {digest.hexdigest()}; the manifest says "
                f"{manifest['size_bytes']} bytes and {manifest['sha256']} (file altered)",
            )
        )
    fmt = manifest["format"]
    if fmt not in FORMATS:
        return [*checks, Check("count", False, f"unknown format {fmt!r} in the manifest")]
    try:
        count = count_records(path, fmt)
    except MalformedExport as exc:
        return [*checks, Check("count", False, f"not a well-formed {fmt} export: {exc}")]
    expected = manifest["record_count"]
    if count == expected:
        checks.append(Check("count", True, f"{count} records"))
    else:
        checks.append(
            Check("count", False, f"the file has {count} records, the manifest {expected}")
        )
    return checks


def check_deployment_key(manifest: dict[str, Any], deployment_key_id: str | None) -> Check:
    """Whether the manifest names this deployment's signing key (None: it has none yet)."""
    key = manifest.get("signing_key")
    key_id = key.get("id") if isinstance(key, dict) else None
    if deployment_key_id is None:
        return Check("deployment key", False, "this deployment has no signing key yet")
    if key_id == deployment_key_id:
        return Check("deployment key", True, f"signed by this deployment's key {key_id}")
    return Check(
        "deployment key",
        False,
        f"signed by key {key_id}, not this deployment's signing key {deployment_key_id}",
    )
