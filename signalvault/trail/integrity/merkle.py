"""RFC 6962 Merkle trees over leaf hashes: roots, an append-only frontier, inclusion and
consistency proofs and their verification (RFC 9162 §2.1). Pure functions; imports nothing else.

Proofs are described first as the leaf ranges whose subtree hashes they hold, so a verifier that
streams the leaves (audit verify over a million records) can hash those ranges as they pass by
without keeping every leaf in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than `size` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


class Frontier:
    """Roots of the perfect subtrees covering the leaves appended so far, largest first: enough to
    append more leaves and compute the root without the earlier leaves."""

    __slots__ = ("_nodes", "size")

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        if len(nodes) != size.bit_count():
            raise ValueError("a frontier of this size needs one node per set bit of its size")
        self.size = size
        # (height, hash): subtree of 2**height leaves.
        heights = [bit for bit in range(size.bit_length() - 1, -1, -1) if size >> bit & 1]
        self._nodes = list(zip(heights, nodes, strict=True))

    def append(self, leaf: bytes) -> None:
        nodes = self._nodes
        nodes.append((0, leaf))
        while len(nodes) > 1 and nodes[-1][0] == nodes[-2][0]:
            height, right = nodes.pop()
            _, left = nodes.pop()
            nodes.append((height + 1, node_hash(left, right)))
        self.size += 1

    def root(self) -> bytes:
        if not self._nodes:
            return EMPTY_ROOT
        result = self._nodes[-1][1]
        for _, left in reversed(self._nodes[:-1]):
            result = node_hash(left, result)
        return result

    def to_bytes(self) -> bytes:
        return b"".join(node for _, node in self._nodes)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> Frontier:
        if len(data) != HASH_SIZE * size.bit_count():
            raise ValueError("stored frontier does not match its tree size")
        nodes = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
        return cls(size, nodes)

    def copy(self) -> Frontier:
        return Frontier(self.size, [node for _, node in self._nodes])


def root_of(leaves: Iterable[bytes]) -> bytes:
    """The Merkle tree hash (MTH) of leaf hashes."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges [start, end) of the audit path of leaf `index` in a tree of `size` leaves,
    deepest first (RFC 6962 §2.1.1 PATH)."""
    if not 0 <= index < size:
        raise ValueError("leaf index outside the tree")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges of the consistency proof from the tree of `old_size` leaves to the tree of
    `new_size` leaves (RFC 6962 §2.1.2 PROOF), in proof order."""
    if not 0 < old_size <= new_size:
        raise ValueError("a consistency proof needs 0 < old size <= new size")
    ranges: list[tuple[int, int]] = []
    m, start, end, whole = old_size, 0, new_size, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            m -= k
            start += k
            whole = False
    if not whole:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def range_hashes(leaves: Sequence[bytes], ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    return [root_of(leaves[start:end]) for start, end in ranges]


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    return range_hashes(leaves, inclusion_ranges(index, len(leaves)))


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    return range_hashes(leaves, consistency_ranges(old_size, len(leaves)))


class RangeHasher:
    """Hashes given disjoint leaf ranges while the leaves stream past in order."""

    def __init__(self, ranges: Sequence[tuple[int, int]]) -> None:
        self._ranges = sorted(ranges)
        self._open: Frontier | None = None
        self._next = 0
        self.hashes: dict[tuple[int, int], bytes] = {}

    def add(self, index: int, leaf: bytes) -> None:
        """Feed leaf `index` (indexes must arrive in increasing order)."""
        if self._next >= len(self._ranges):
            return
        start, end = self._ranges[self._next]
        if index < start:
            return
        if self._open is None:
            self._open = Frontier()
        self._open.append(leaf)
        if index == end - 1:
            self.hashes[(start, end)] = self._open.root()
            self._open = None
            self._next += 1

    def proof(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        return [self.hashes[r] for r in ranges]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: True if `proof` shows leaf `index` with hash `leaf` is in the tree of
    `size` leaves with hash `root`."""
    if not 0 <= index < size:
        return False
    fn, sn, result = index, size - 1, leaf
    for node in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(node, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, node)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: True if `proof` shows the tree of `new_size` leaves (hash `new_root`)
    extends the tree of `old_size` leaves (hash `old_root`)."""
    if old_size == new_size:
        return not proof and old_root == new_root
    if not 0 < old_size < new_size or not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself a proof node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first = second = path[0]
    for node in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            first = node_hash(node, first)
            second = node_hash(node, second)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            second = node_hash(second, node)
        fn >>= 1
        sn >>= 1
    return sn == 0 and first == old_root and second == new_root
