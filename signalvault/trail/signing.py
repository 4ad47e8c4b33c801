"""The deployment's Ed25519 signing key: signs audit checkpoints and export manifests.

The private key is stored only wrapped by the master key (like the HMAC pepper), so whoever can
rewrite the database still cannot forge a signature without the master key. The public key is
published with every signed artefact so that anyone can check it outside the system.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from signalvault.crypto.envelope import MasterKeys
from signalvault.errors import CryptoError
from signalvault.store import Store

SIGNING_KEY_NAME = "signing_key"


def public_key_id(public_raw: bytes) -> str:
    return hashlib.sha256(b"signalvault-signing-key" + public_raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Signer:
    private_key: Ed25519PrivateKey

    @property
    def public_raw(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode()

    @property
    def key_id(self) -> str:
        return public_key_id(self.public_raw)

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)


def verify_signature(public_raw: bytes, signature: bytes, data: bytes) -> bool:
    """True if `signature` is the key's Ed25519 signature of `data`."""
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def load_signer(store: Store, master_key: MasterKeys) -> Signer:
    """The signing key, created and stored wrapped on first use (first writer wins a race)."""
    found = store.get_wrapped_secret(SIGNING_KEY_NAME)
    if found is None:
        seed = Ed25519PrivateKey.generate().private_bytes_raw()
        store.put_wrapped_secret(
            SIGNING_KEY_NAME, master_key.wrap(SIGNING_KEY_NAME, seed), master_key.key_id
        )
        found = store.get_wrapped_secret(SIGNING_KEY_NAME)
        if found is None:
            raise CryptoError("the signing key could not be stored")
    seed = master_key.unwrap(SIGNING_KEY_NAME, found[0], found[1])
    return Signer(Ed25519PrivateKey.from_private_bytes(seed))
