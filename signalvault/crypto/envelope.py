"""Envelope encryption: AES-256-GCM data keys wrapped by the master key, and master-key sources.

Content is encrypted under a per-subject data key with the record id as associated data, so a
ciphertext moved to another record does not decrypt. Data keys are stored only wrapped.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from signalvault.config import CryptoSettings
from signalvault.errors import ConfigError, CryptoError

KEY_BYTES = 32
NONCE_BYTES = 12
MASTER_KEY_FILE = "master.key"


def ensure_data_dir(path: Path) -> Path:
    """Create the data directory with mode 0700 (tightening it if it exists).

    Raises:
        ConfigError: the directory cannot be created or is not ours to restrict.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    except OSError as exc:
        raise ConfigError(f"cannot use data directory {path}: {exc.strerror}") from None
    return path


def parse_key(text: str, source: str) -> bytes:
    text = text.strip()
    candidates: list[bytes] = []
    with contextlib.suppress(ValueError):
        candidates.append(bytes.fromhex(text))
    with contextlib.suppress(binascii.Error, ValueError):
        candidates.append(base64.b64decode(text, validate=True))
    for key in candidates:
        if len(key) == KEY_BYTES:
            return key
    raise ConfigError(f"{source}: the master key must be 32 bytes, as 64 hex digits or base64")


class Cipher:
    """AES-256-GCM with a random 96-bit nonce stored in front of the ciphertext."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, associated_data)

    def decrypt(self, blob: bytes, associated_data: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated_data)
        except InvalidTag:
            raise CryptoError("ciphertext does not authenticate (wrong key or altered)") from None


@dataclass(frozen=True, slots=True)
class MasterKey:
    """The root key. `key_id` names it in the store without revealing it."""

    key: bytes
    key_id: str

    @classmethod
    def from_bytes(cls, key: bytes) -> MasterKey:
        return cls(key, hashlib.sha256(b"signalvault-master-key-id" + key).hexdigest()[:16])

    def wrap(self, name: str, secret: bytes) -> bytes:
        """Encrypt a key (data key, pepper, signing key) bound to its name."""
        return Cipher(self.key).encrypt(secret, b"wrap:" + name.encode())

    def unwrap(self, name: str, wrapped: bytes, master_key_id: str | None = None) -> bytes:
        try:
            return Cipher(self.key).decrypt(wrapped, b"wrap:" + name.encode())
        except CryptoError:
            raise CryptoError(f"cannot unwrap {name}: the master key does not match") from None

    def holds(self, master_key_id: str) -> bool:
        return master_key_id == self.key_id

    def refresh(self) -> None:
        """A single key never changes (see `MasterKeyRing.refresh`)."""


class MasterKeys(Protocol):
    """What wraps and unwraps keys: one `MasterKey`, or a `MasterKeyRing` during a rotation."""

    @property
    def key_id(self) -> str: ...
    def wrap(self, name: str, secret: bytes) -> bytes: ...
    def unwrap(self, name: str, wrapped: bytes, master_key_id: str | None = None) -> bytes: ...
    def holds(self, master_key_id: str) -> bool: ...
    def refresh(self) -> None: ...


# Returns the source's keys (current first) when they changed since the last call, else None.
KeyWatch = Callable[[], "tuple[MasterKey, ...] | None"]


class MasterKeyRing:
    """The current master key, which wraps new keys, plus the previous one during a rotation.

    Every wrapped key records the id of the master key that wrapped it, so unwrapping picks the
    key by id. A process started before a rotation notices the new key through `refresh`.
    """

    def __init__(self, keys: tuple[MasterKey, ...], watch: KeyWatch | None = None) -> None:
        if not keys:
            raise CryptoError("a master key ring needs at least one key")
        self._keys = keys
        self._watch = watch
        self._lock = threading.Lock()

    @property
    def current(self) -> MasterKey:
        return self._keys[0]

    @property
    def previous(self) -> tuple[MasterKey, ...]:
        return self._keys[1:]

    @property
    def key_id(self) -> str:
        return self._keys[0].key_id

    def holds(self, master_key_id: str) -> bool:
        return any(key.key_id == master_key_id for key in self._keys)

    def refresh(self) -> None:
        """Reload the keys if their source changed (a rotation by another process): cheap."""
        if self._watch is None:
            return
        with self._lock:
            keys = self._watch()
            if keys:
                self._keys = keys  # one assignment: readers see the old or the new tuple

    def wrap(self, name: str, secret: bytes) -> bytes:
        return self._keys[0].wrap(name, secret)

    def unwrap(self, name: str, wrapped: bytes, master_key_id: str | None = None) -> bytes:
        """Unwrap with the key named `master_key_id` (reloading once if it is not held), or
        with each held key in turn when the id is not known.

        Raises:
            CryptoError: no held key unwraps it.
        """
        if master_key_id is not None:
            if not self.holds(master_key_id):
                self.refresh()
            for key in self._keys:
                if key.key_id == master_key_id:
                    return key.unwrap(name, wrapped)
            raise CryptoError(
                f"cannot unwrap {name}: the master key does not match (it was wrapped by "
                f"master key {master_key_id}, which this process does not hold)"
            )
        for key in self._keys:
            with contextlib.suppress(CryptoError):
                return key.unwrap(name, wrapped)
        raise CryptoError(f"cannot unwrap {name}: the master key does not match")


def read_key_text(path: Path, *, missing_ok: bool = False) -> str | None:
    """The text of a key file, or None if it does not exist and `missing_ok`.

    Raises:
        ConfigError: unreadable, or not text (e.g. 32 raw bytes instead of hex or base64).
    """
    try:
        return path.read_text()
    except FileNotFoundError:
        if missing_ok:
            return None
        raise ConfigError(f"cannot read master key file {path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read master key file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path}: the master key must be 32 bytes, as 64 hex digits or base64"
        ) from None


def load_master_key(settings: CryptoSettings, data_dir: Path) -> MasterKey:
    """The master key from settings (env), a key file, or generated into the data directory.

    Raises:
        ConfigError: a configured key or key file is missing or malformed.
    """
    if settings.master_key is not None:
        return MasterKey.from_bytes(parse_key(settings.master_key.reveal(), "master_key"))
    if settings.master_key_file is not None:
        path = settings.master_key_file
        return MasterKey.from_bytes(parse_key(read_key_text(path) or "", str(path)))
    path = ensure_data_dir(data_dir) / MASTER_KEY_FILE
    text = read_key_text(path, missing_ok=True)
    if text is not None:
        return MasterKey.from_bytes(parse_key(text, str(path)))
    key = os.urandom(KEY_BYTES)
    # Written whole under a private name, then linked into place: two processes starting at
    # once must not each write a different key, nor read the other's before it is written.
    staged = path.with_name(f"{path.name}.{os.urandom(6).hex()}.new")
    try:
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key.hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(staged, path)
    except FileExistsError:
        return MasterKey.from_bytes(parse_key(read_key_text(path) or "", str(path)))
    except OSError as exc:
        raise ConfigError(f"cannot create master key file {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            staged.unlink()
    return MasterKey.from_bytes(key)


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)
