"""An output file that appears whole or not at all: bytes go to a temporary file beside the
target (hashed on the way), which is fsynced and renamed over the target only on `commit`."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from types import TracebackType

from signalvault.errors import ConfigError

# Exports write a batch at a time (~1 MB); a buffer smaller than that passes most of each write
# straight to the file instead of copying it into the buffer first.
BUFFER = 1 << 16


class AtomicFile:
    """Use as a context manager: leaving it without `commit()` removes the temporary file."""

    def __init__(self, target: Path) -> None:
        self.target = target
        if target.is_dir():
            raise ConfigError(f"cannot write {target}: it is a directory")
        try:
            # mkstemp creates the file 0600: a content export is as sensitive as the trail.
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        except OSError as exc:
            raise ConfigError(f"cannot write {target}: {exc.strerror}") from None
        self._temp = Path(name)
        self._handle = os.fdopen(fd, "wb", buffering=BUFFER)
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        if data:
            self._hash.update(data)
            self._handle.write(data)
            self.size += len(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def commit(self) -> None:
        """Make the file durable and visible under its target name."""
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self._temp, self.target)
        _sync_directory(self.target.parent)

    def discard(self) -> None:
        if not self._handle.closed:
            self._handle.close()
        with contextlib.suppress(FileNotFoundError):
            self._temp.unlink()

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.discard()  # after commit() the temporary name is gone, so this only closes


def _sync_directory(directory: Path) -> None:
    """Persist the rename itself (POSIX); platforms that cannot open directories skip it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
