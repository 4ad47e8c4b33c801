"""Where the master key comes from, and how a rotation installs a new one.

Two sources: a key file (default `<data_dir>/master.key`; the key before a rotation waits in
`<file>.previous` until `master-key rotate --finish`), or the environment, which SignalVault
reads but cannot change. Imports crypto and config only.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Protocol

from signalvault.config import CryptoSettings, Settings
from signalvault.crypto.envelope import (
    MASTER_KEY_FILE,
    MasterKey,
    MasterKeyRing,
    load_master_key,
    parse_key,
    read_key_text,
)
from signalvault.errors import ConfigError

PREVIOUS_SUFFIX = ".previous"
ENV_ROTATION_STEPS = (
    "the master key comes from the environment (SIGNALVAULT_MASTER_KEY or [crypto] master_key), "
    "which SignalVault cannot change: run `signalvault master-key rotate --new-key-file F`, then "
    "set SIGNALVAULT_MASTER_KEY to the new key and SIGNALVAULT_CRYPTO_PREVIOUS_MASTER_KEY to the "
    "old one, restart every gateway, and run `signalvault master-key rotate --finish`"
)


class KeySource(Protocol):
    """Loads the master key(s); during a rotation, installs the new key and retires the old."""

    @property
    def description(self) -> str: ...
    def load(self) -> MasterKeyRing: ...
    def install(self, new: MasterKey) -> None: ...
    def retire_previous(self) -> str: ...


def open_key_source(settings: Settings) -> KeySource:
    """The environment if a key is set there, else the key file."""
    crypto = settings.crypto
    if crypto.master_key is not None:
        return EnvKeySource(crypto)
    return FileKeySource(crypto, settings.store.data_dir)


def _write_key_file(path: Path, key: bytes) -> None:
    """Create `path` (mode 0600, must not exist) holding `key` as hex, durably."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileKeySource:
    """`master.key` (or `[crypto] master_key_file`) plus `<file>.previous` during a rotation.

    A running gateway's ring watches both files (one `stat` per check), so a rotation made by
    the CLI reaches it without a restart.
    """

    def __init__(self, settings: CryptoSettings, data_dir: Path) -> None:
        self._settings = settings
        self._data_dir = data_dir
        self.path = settings.master_key_file or data_dir / MASTER_KEY_FILE
        self.previous_path = self.path.with_name(self.path.name + PREVIOUS_SUFFIX)
        self._seen: tuple[object, ...] = ()

    @property
    def description(self) -> str:
        return f"key file {self.path}"

    def _stamp(self) -> tuple[object, ...]:
        stamps: list[object] = []
        for path in (self.path, self.previous_path):
            try:
                info = path.stat()
                stamps.append((info.st_ino, info.st_mtime_ns, info.st_size))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def _read(self) -> tuple[MasterKey, ...]:
        current = load_master_key(self._settings, self._data_dir)
        text = read_key_text(self.previous_path, missing_ok=True)
        if text is None:
            return (current,)
        previous = MasterKey.from_bytes(parse_key(text, str(self.previous_path)))
        return (current,) if previous.key_id == current.key_id else (current, previous)

    def load(self) -> MasterKeyRing:
        self._seen = self._stamp()
        return MasterKeyRing(self._read(), watch=self._watch)

    def _watch(self) -> tuple[MasterKey, ...] | None:
        stamp = self._stamp()
        if stamp == self._seen:
            return None
        try:
            keys = self._read()
        except ConfigError:
            return None  # keep the keys in hand; the next check tries again
        self._seen = stamp
        return keys

    def install(self, new: MasterKey) -> None:
        """Keep the current key as `<file>.previous`, then atomically make `new` current.

        Raises:
            ConfigError: a rotation is already unfinished, or the files cannot be written.
        """
        if self.previous_path.exists():
            raise ConfigError(
                f"a rotation is unfinished ({self.previous_path} exists): run "
                "`signalvault master-key rotate --finish` first"
            )
        current = load_master_key(self._settings, self._data_dir)
        staged = self.path.with_name(self.path.name + ".new")
        try:
            _write_key_file(self.previous_path, current.key)
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()
            _write_key_file(staged, new.key)
            os.replace(staged, self.path)
            _sync_dir(self.path.parent)
        except OSError as exc:
            raise ConfigError(f"cannot install the new master key: {exc.strerror}") from None

    def retire_previous(self) -> str:
        """Overwrite and delete `<file>.previous`; says what was done."""
        try:
            size = self.previous_path.stat().st_size
        except FileNotFoundError:
            return "no previous key file to destroy"
        try:
            with self.previous_path.open("r+b") as handle:
                handle.write(b"\0" * size)
                handle.flush()
                os.fsync(handle.fileno())
            self.previous_path.unlink()
            _sync_dir(self.previous_path.parent)
        except OSError as exc:
            raise ConfigError(f"cannot destroy {self.previous_path}: {exc.strerror}") from None
        return f"destroyed {self.previous_path}"


class EnvKeySource:
    """`[crypto] master_key` (SIGNALVAULT_MASTER_KEY) and, during a rotation,
    `[crypto] previous_master_key`. Read-only: the operator switches the variables."""

    def __init__(self, settings: CryptoSettings) -> None:
        self._settings = settings

    @property
    def description(self) -> str:
        return "the environment"

    def load(self) -> MasterKeyRing:
        assert self._settings.master_key is not None
        current = MasterKey.from_bytes(parse_key(self._settings.master_key.reveal(), "master_key"))
        keys: tuple[MasterKey, ...] = (current,)
        if self._settings.previous_master_key is not None:
            previous = MasterKey.from_bytes(
                parse_key(self._settings.previous_master_key.reveal(), "previous_master_key")
            )
            if previous.key_id != current.key_id:
                keys = (current, previous)
        return MasterKeyRing(keys)

    def install(self, new: MasterKey) -> None:
        raise ConfigError(ENV_ROTATION_STEPS)

    def retire_previous(self) -> str:
        return "now remove SIGNALVAULT_CRYPTO_PREVIOUS_MASTER_KEY from the gateways' environment"


def read_key_file(path: Path) -> MasterKey:
    """A master key from a file given on the command line (`--new-key-file`)."""
    return MasterKey.from_bytes(parse_key(read_key_text(path) or "", str(path)))


__all__ = ["FileKeySource", "KeySource", "open_key_source", "read_key_file"]
