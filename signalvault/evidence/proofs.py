"""Inclusion proofs for many leaves of one tree: every aligned perfect subtree hashed once
(about 2n hashes), so a sample of any size costs one pass over the leaves, not one per proof.
Follows RFC 6962 §2.1 exactly as trail/integrity/merkle.py does, and is checked against it."""

from __future__ import annotations

from collections.abc import Sequence

from signalvault.trail.integrity.merkle import EMPTY_ROOT, inclusion_ranges, node_hash


class ProofTree:
    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.size = len(leaves)
        # levels[h][i]: hash of leaves [i * 2**h, (i + 1) * 2**h).
        self._levels: list[Sequence[bytes]] = [leaves]
        level = leaves
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self._levels.append(level)

    def subtree(self, start: int, end: int) -> bytes:
        """The Merkle tree hash of leaves [start, end)."""
        width = end - start
        if width & (width - 1) == 0 and start % width == 0:
            return self._levels[width.bit_length() - 1][start // width]
        split = 1 << ((width - 1).bit_length() - 1)  # the largest power of two below width
        return node_hash(self.subtree(start, start + split), self.subtree(start + split, end))

    def root(self) -> bytes:
        return self.subtree(0, self.size) if self.size else EMPTY_ROOT

    def inclusion(self, index: int) -> list[bytes]:
        return [self.subtree(start, end) for start, end in inclusion_ranges(index, self.size)]
