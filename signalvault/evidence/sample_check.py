"""`audit verify-sample`: check an auditor's sample offline, with nothing but the file (and,
optionally, a checkpoint or public key the auditor obtained independently).

Checks, each reported: the file's signature; the checkpoint's signature by the file's public key
(and that it is the trusted checkpoint, when one is given); then per record that its fields hash
to its leaf, the leaf sits at its seq, and the proof leads from it to the checkpoint's root.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path
from typing import Any

import orjson

from signalvault.evidence.sample import SAMPLE_TYPE, SAMPLE_VERSION
from signalvault.trail.export import manifest as manifests
from signalvault.trail.export.manifest import Check
from signalvault.trail.integrity.checkpoint import Checkpoint, CheckpointError, parse_body
from signalvault.trail.integrity.merkle import HASH_SIZE, leaf_hash, verify_inclusion

MAX_NAMED = 20  # records named one by one in the report; the count covers the rest


def load_sample(path: Path) -> dict[str, Any]:
    """Raises ValueError: unreadable, not JSON, or not a SignalVault sample."""
    try:
        document = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError:
        raise ValueError(f"{path} is not JSON") from None
    if not isinstance(document, dict) or document.get("type") != SAMPLE_TYPE:
        raise ValueError(f"{path} is not a SignalVault audit sample")
    if document.get("v") != SAMPLE_VERSION:
        raise ValueError(f"{path}: unsupported sample version {document.get('v')!r}")
    return document


def _checkpoint(document: dict[str, Any]) -> Checkpoint:
    stated = document.get("checkpoint")
    if not isinstance(stated, dict):
        raise CheckpointError("the sample has no checkpoint")
    try:
        signature = base64.b64decode(stated["signature"], validate=True)
    except (KeyError, TypeError, binascii.Error):
        raise CheckpointError("the checkpoint's signature field is malformed") from None
    checkpoint = parse_body(str(stated.get("body")), signature)
    if (
        stated.get("tree_size") != checkpoint.tree_size
        or stated.get("root") != checkpoint.root.hex()
    ):
        raise CheckpointError("the checkpoint's tree size or root differ from its signed body")
    return checkpoint


def check_sample(
    document: dict[str, Any],
    trusted: Checkpoint | None = None,
    public_key: bytes | None = None,
) -> list[Check]:
    """Every check, in order; the sample verifies only if all pass."""
    checks = [manifests.check_signature(document)]
    try:
        checkpoint = _checkpoint(document)
    except CheckpointError as exc:
        return [*checks, Check("checkpoint", False, str(exc))]
    signer = _signing_key(document)
    if signer is None or not checkpoint.is_signed_by(signer):
        checks.append(
            Check("checkpoint", False, "the checkpoint is not signed by the sample's public key")
        )
    else:
        checks.append(
            Check(
                "checkpoint",
                True,
                f"tree size {checkpoint.tree_size}, root {checkpoint.root.hex()[:16]}…, signed "
                f"by key {checkpoint.key_id}",
            )
        )
    if public_key is not None:
        is_same = signer == public_key
        detail = "the sample's key is the expected key" if is_same else "signed by another key"
        checks.append(Check("public key", is_same, detail))
    if trusted is not None:
        is_same = trusted.body == checkpoint.body and trusted.signature == checkpoint.signature
        detail = (
            "the proofs are against the trusted checkpoint"
            if is_same
            else f"the proofs are against a different checkpoint (tree size "
            f"{checkpoint.tree_size}, not the trusted {trusted.tree_size})"
        )
        checks.append(Check("trusted checkpoint", is_same, detail))
    checks.append(_check_records(document.get("records"), checkpoint))
    return checks


def _signing_key(document: dict[str, Any]) -> bytes | None:
    key = document.get("signing_key")
    try:
        return base64.b64decode(key["public_key"], validate=True)  # type: ignore[index]
    except (TypeError, KeyError, binascii.Error):
        return None


def _check_records(records: Any, checkpoint: Checkpoint) -> Check:
    if not isinstance(records, list):
        return Check("records", False, "the sample has no record list")
    bad: list[str] = []
    for position, record in enumerate(records):
        problem = _record_problem(record, checkpoint)
        if problem is not None:
            bad.append(f"record #{position + 1} {problem}")
    if bad:
        named = "; ".join(bad[:MAX_NAMED])
        more = f" (and {len(bad) - MAX_NAMED} more)" if len(bad) > MAX_NAMED else ""
        return Check("records", False, f"{len(bad)} of {len(records)} fail: {named}{more}")
    return Check("records", True, f"{len(records)} records, each proven in the checkpoint's tree")


def _record_problem(record: Any, checkpoint: Checkpoint) -> str | None:
    if not isinstance(record, dict) or not isinstance(record.get("leaf"), dict):
        return "is malformed"
    fields = record["leaf"]
    name = f"({fields.get('id')}, seq {record.get('seq')})"
    seq = record.get("seq")
    if not isinstance(seq, int) or fields.get("seq") != seq:
        return f"{name}: its seq differs from the seq in its fields"
    leaf = leaf_hash(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS))
    if leaf.hex() != record.get("leaf_hash"):
        return f"{name}: its fields do not hash to its leaf (a field was changed)"
    try:
        proof = [bytes.fromhex(node) for node in record.get("proof", [])]
    except (TypeError, ValueError):
        return f"{name}: its proof is malformed"
    if any(len(node) != HASH_SIZE for node in proof) or not verify_inclusion(
        leaf, seq, checkpoint.tree_size, proof, checkpoint.root
    ):
        return f"{name}: its inclusion proof does not lead to the checkpoint's root"
    content = record.get("content")
    if isinstance(content, dict) and not content.get("withheld"):
        for column in ("prompt_ct", "response_ct", "events_ct"):
            value = content.get(column)
            digest = None if value is None else hashlib.sha256(base64.b64decode(value)).hexdigest()
            if digest != fields.get(column):
                return f"{name}: its {column} does not match the digest its leaf commits to"
    return None
