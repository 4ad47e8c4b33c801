"""Findings of texts already scanned, so a text sent again is not scanned again.

Chat clients resend the system prompt and the whole conversation on every turn, so most of the
text a gateway sees it has seen before, and scanning it is most of a request's CPU. Detectors are
pure functions of the text, and an Engine (with its cache) is rebuilt whenever the policy
changes, so a hit is exactly what a new scan would find.

Keys are keyed BLAKE2b digests (the key is random per process): the cache keeps no text, and its
keys say nothing about a text to anyone without the process's memory.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict

from signalvault.guardrails.finding import Finding

# Shorter texts scan in microseconds: hashing and a lookup would cost about as much.
MIN_CHARS = 128


class ScanCache:
    """A bounded LRU map from (detector, text) to that detector's findings; thread-safe."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._key = os.urandom(32)
        self._entries: OrderedDict[tuple[int, bytes], tuple[Finding, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def digest(self, text: str) -> bytes | None:
        """The cache key of `text`, or None if it is not worth caching."""
        if self.max_entries <= 0 or len(text) < MIN_CHARS:
            return None
        encoded = text.encode("utf-8", "surrogatepass")
        return hashlib.blake2b(encoded, digest_size=16, key=self._key).digest()

    def get(self, detector: int, digest: bytes) -> tuple[Finding, ...] | None:
        with self._lock:
            found = self._entries.get((detector, digest))
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end((detector, digest))
            self.hits += 1
            return found

    def put(self, detector: int, digest: bytes, findings: tuple[Finding, ...]) -> None:
        with self._lock:
            self._entries[(detector, digest)] = findings
            self._entries.move_to_end((detector, digest))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
