"""Signed checkpoints (tree heads): the body is canonical JSON and is exactly what is signed.

A body commits to the tree size, the root, the previous checkpoint's digest (so checkpoints form
a chain), the time and the signing key. The JSON line form carries body, signature and public
key, so a copy kept outside the gateway can be checked on its own.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from signalvault.errors import ConfigError
from signalvault.trail.signing import Signer, public_key_id, verify_signature

CHECKPOINT_TYPE = "signalvault.audit.checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ConfigError):
    """A checkpoint line or body that cannot be read (bad input: exit 1 in the CLI)."""


def body_digest(body: str) -> str:
    """The digest the next checkpoint names as `prev`."""
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    tree_size: int
    root: bytes
    prev: str | None
    time: float
    key_id: str
    public_key: bytes
    body: str
    signature: bytes

    @property
    def digest(self) -> str:
        return body_digest(self.body)

    def is_signed_by(self, public_raw: bytes) -> bool:
        return self.public_key == public_raw and verify_signature(
            public_raw, self.signature, self.body.encode()
        )

    def json_line(self) -> str:
        """The form exported and sent to external sinks."""
        return orjson.dumps(
            {
                "tree_size": self.tree_size,
                "root": self.root.hex(),
                "body": self.body,
                "signature": base64.b64encode(self.signature).decode(),
                "public_key": base64.b64encode(self.public_key).decode(),
                "key_id": self.key_id,
            }
        ).decode()


def sign_checkpoint(
    signer: Signer, tree_size: int, root: bytes, prev: str | None, time: float
) -> Checkpoint:
    body = orjson.dumps(
        {
            "type": CHECKPOINT_TYPE,
            "v": CHECKPOINT_VERSION,
            "tree_size": tree_size,
            "root": root.hex(),
            "prev": prev,
            "time": time,
            "key_id": signer.key_id,
            "public_key": signer.public_b64,
        },
        option=orjson.OPT_SORT_KEYS,
    ).decode()
    return Checkpoint(
        tree_size,
        root,
        prev,
        time,
        signer.key_id,
        signer.public_raw,
        body,
        signer.sign(body.encode()),
    )


def parse_body(body: str, signature: bytes) -> Checkpoint:
    """A checkpoint from its signed body (whatever the surrounding row or line claims).

    Raises:
        CheckpointError: the body is not a checkpoint body.
    """
    try:
        fields: Any = orjson.loads(body)
        if fields.get("type") != CHECKPOINT_TYPE or fields.get("v") != CHECKPOINT_VERSION:
            raise CheckpointError("not a SignalVault checkpoint (type or version)")
        public_key = base64.b64decode(fields["public_key"], validate=True)
        checkpoint = Checkpoint(
            tree_size=int(fields["tree_size"]),
            root=bytes.fromhex(fields["root"]),
            prev=fields["prev"],
            time=float(fields["time"]),
            key_id=str(fields["key_id"]),
            public_key=public_key,
            body=body,
            signature=signature,
        )
    except CheckpointError:
        raise
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        raise CheckpointError("checkpoint body is malformed") from None
    if checkpoint.key_id != public_key_id(public_key) or len(checkpoint.root) != 32:
        raise CheckpointError("checkpoint body is malformed (key id or root)")
    return checkpoint


def parse_json_line(line: str) -> Checkpoint:
    """A checkpoint from its JSON line form (export, checkpoint file, webhook body).

    Raises:
        CheckpointError: the line is not a checkpoint.
    """
    try:
        fields: Any = orjson.loads(line)
        body, signature = fields["body"], base64.b64decode(fields["signature"], validate=True)
        if not isinstance(body, str):
            raise TypeError
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise CheckpointError("not a checkpoint JSON line") from None
    return parse_body(body, signature)
