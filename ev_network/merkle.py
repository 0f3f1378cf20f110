"""OpenZeppelin StandardMerkleTree in Python, over leaves already hashed: the same roots and proofs
as ``@openzeppelin/merkle-tree`` (sorted leaves, sorted-pair keccak256), checkable on chain with
OpenZeppelin's ``MerkleProof``."""

from __future__ import annotations

from eth_utils import keccak

from ev_network.errors import EVNetworkError

Hex32 = str  # "0x" + 64 hex digits


class MerkleError(EVNetworkError):
    """A tree without leaves, or a proof asked for a leaf the tree does not hold."""


def bytes32(value: Hex32) -> bytes:
    """``0x`` and 64 hex digits as 32 bytes."""
    raw = bytes.fromhex(value.removeprefix("0x"))
    if len(raw) != 32:
        raise MerkleError(f"{value!r} is not a 32-byte hex value")
    return raw


def hex32(data: bytes) -> Hex32:
    return "0x" + data.hex()


def _hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


class MerkleTree:
    """OpenZeppelin StandardMerkleTree's layout over already hashed leaves: leaves sorted, stored at the
    end of one array, node ``i`` the sorted-pair hash of nodes ``2i+1`` and ``2i+2``, root at 0."""

    def __init__(self, leaves: list[Hex32]) -> None:
        if not leaves:
            raise MerkleError("a Merkle tree needs at least one leaf")
        ordered = sorted(bytes32(leaf) for leaf in leaves)
        n = len(ordered)
        self._nodes: list[bytes] = [b""] * (2 * n - 1)
        for i, leaf in enumerate(ordered):
            self._nodes[len(self._nodes) - 1 - i] = leaf
        for i in range(n - 2, -1, -1):
            self._nodes[i] = _hash_pair(self._nodes[2 * i + 1], self._nodes[2 * i + 2])
        self._position = {leaf: len(self._nodes) - 1 - i for i, leaf in enumerate(ordered)}

    @property
    def root(self) -> Hex32:
        return hex32(self._nodes[0])

    def proof(self, leaf: Hex32) -> list[Hex32]:
        """The sibling hashes from ``leaf`` up to the root (OpenZeppelin MerkleProof's order)."""
        i = self._position.get(bytes32(leaf))
        if i is None:
            raise MerkleError(f"leaf {leaf} is not in this tree")
        path = []
        while i > 0:
            path.append(hex32(self._nodes[i + 1 if i % 2 else i - 1]))
            i = (i - 1) // 2
        return path


def process_proof(leaf: Hex32, proof: list[Hex32]) -> Hex32:
    """The root that ``proof`` leads to from ``leaf`` (OpenZeppelin ``MerkleProof.processProof``)."""
    node = bytes32(leaf)
    for sibling in proof:
        node = _hash_pair(node, bytes32(sibling))
    return hex32(node)
