"""Merkle tree hashes and proofs against hand-built small trees, and random sizes."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signalvault.trail.integrity.merkle import (
    EMPTY_ROOT,
    Frontier,
    RangeHasher,
    consistency_proof,
    consistency_ranges,
    inclusion_proof,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


LEAVES = [leaf_hash(bytes([i])) for i in range(8)]
a, b, c, d, e, f, g, h = LEAVES
AB, CD, EF = node_hash(a, b), node_hash(c, d), node_hash(e, f)
ABCD = node_hash(AB, CD)


def test_hashes_use_rfc6962_domain_prefixes():
    assert leaf_hash(b"x") == sha(b"\x00x")
    assert node_hash(b"l", b"r") == sha(b"\x01lr")
    assert root_of([]) == EMPTY_ROOT == sha(b"")


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (1, a),
        (2, AB),
        (3, node_hash(AB, c)),
        (5, node_hash(ABCD, e)),
        (7, node_hash(ABCD, node_hash(EF, g))),
    ],
)
def test_root_of_small_trees(size, expected):
    assert root_of(LEAVES[:size]) == expected


def test_frontier_survives_serialisation_and_keeps_appending():
    frontier = Frontier()
    for leaf in LEAVES[:5]:
        frontier.append(leaf)
    again = Frontier.from_bytes(5, frontier.to_bytes())
    assert len(frontier.to_bytes()) == 64  # subtrees of 4 and 1 leaves
    for leaf in LEAVES[5:]:
        again.append(leaf)
    assert again.root() == root_of(LEAVES)
    with pytest.raises(ValueError):
        Frontier.from_bytes(7, frontier.to_bytes())


def test_inclusion_proof_of_leaf_d_in_seven_leaves():
    # RFC 6962 §2.1.3 example: the path of d in the 7-leaf tree is [c, a..b, e..g].
    assert inclusion_ranges(3, 7) == [(2, 3), (0, 2), (4, 7)]
    proof = inclusion_proof(LEAVES[:7], 3)
    assert proof == [c, AB, node_hash(EF, g)]
    assert verify_inclusion(d, 3, 7, proof, root_of(LEAVES[:7]))


def test_consistency_proofs_of_rfc_examples():
    # RFC 6962 §2.1.3: tree of 3 -> 7 is [c, d, a..b, e..g]; 4 -> 7 is [e..g]; 6 -> 7 is
    # [e..f, g, a..d].
    assert consistency_proof(LEAVES[:7], 3) == [c, d, AB, node_hash(EF, g)]
    assert consistency_proof(LEAVES[:7], 4) == [node_hash(EF, g)]
    assert consistency_proof(LEAVES[:7], 6) == [EF, g, ABCD]
    for old in (3, 4, 6):
        proof = consistency_proof(LEAVES[:7], old)
        assert verify_consistency(old, 7, root_of(LEAVES[:old]), root_of(LEAVES[:7]), proof)


def test_consistency_of_equal_sizes_needs_an_empty_proof():
    root = root_of(LEAVES[:5])
    assert verify_consistency(5, 5, root, root, [])
    assert not verify_consistency(5, 5, root, root, [a])
    assert not verify_consistency(0, 5, EMPTY_ROOT, root, [])


def flip(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


sizes = st.integers(min_value=1, max_value=70)


@given(size=sizes, data=st.data())
def test_inclusion_proofs_verify_and_altered_ones_fail(size, data):
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    root = root_of(leaves)
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(leaves, index)
    assert verify_inclusion(leaves[index], index, size, proof, root)
    assert not verify_inclusion(flip(leaves[index]), index, size, proof, root)
    assert not verify_inclusion(leaves[index], index, size, proof, flip(root))
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1))
        altered = [*proof[:at], flip(proof[at]), *proof[at + 1 :]]
        assert not verify_inclusion(leaves[index], index, size, altered, root)
        assert not verify_inclusion(leaves[index], index, size, proof[:-1], root)
    if size > 1:
        other = (index + 1) % size
        assert not verify_inclusion(leaves[index], other, size, proof, root)


@given(size=sizes, data=st.data())
def test_consistency_proofs_verify_and_altered_ones_fail(size, data):
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    old = data.draw(st.integers(1, size))
    proof = consistency_proof(leaves, old)
    old_root, new_root = root_of(leaves[:old]), root_of(leaves)
    assert verify_consistency(old, size, old_root, new_root, proof)
    if old < size:
        assert not verify_consistency(old, size, flip(old_root), new_root, proof)
        assert not verify_consistency(old, size, old_root, flip(new_root), proof)
        at = data.draw(st.integers(0, len(proof) - 1))
        altered = [*proof[:at], flip(proof[at]), *proof[at + 1 :]]
        assert not verify_consistency(old, size, old_root, new_root, altered)
        # A rewritten old part (one old leaf changed) has no valid proof to the same new root.
        forged = [flip(leaves[0]), *leaves[1:]]
        assert not verify_consistency(
            old, size, root_of(forged[:old]), new_root, consistency_proof(forged, old)
        )


@given(size=sizes, data=st.data())
def test_streamed_range_hashes_equal_the_direct_proof(size, data):
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    old = data.draw(st.integers(1, size))
    ranges = consistency_ranges(old, size)
    hasher = RangeHasher(ranges)
    for index, leaf in enumerate(leaves):
        hasher.add(index, leaf)
    assert hasher.proof(ranges) == consistency_proof(leaves, old)
