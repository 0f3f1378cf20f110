// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Record anchor interface
/// @notice Operators anchor the Merkle roots of their transaction logs: each anchor commits to a
///         contiguous range of log indexes, and an operator's ranges follow each other without gap or
///         overlap (the next range starts where the last one ended). Nothing here identifies a driver:
///         only roots go on chain; the records and their proofs stay with the operator and the MSPs.
/// @dev Roots use OpenZeppelin's StandardMerkleTree hashing (sorted pairs of keccak256, leaves hashed
///      twice), so a record's inclusion proof checks with MerkleProof, on chain (`verify`) or off.
interface IRecordAnchor {
    /// @notice One anchor: a root over the log indexes firstIndex .. firstIndex + count - 1. Two storage slots.
    /// @param root Merkle root of the range's leaves.
    /// @param firstIndex Log index of the range's first record.
    /// @param count Number of records in the range (at least 1).
    /// @param timestamp Block time of the anchoring transaction (seconds).
    /// @param blockNumber Block of the anchoring transaction.
    struct Anchor {
        bytes32 root;
        uint64 firstIndex;
        uint64 count;
        uint48 timestamp;
        uint48 blockNumber;
    }

    /// @notice `operator` anchored `root` over `count` records from `firstIndex`, as its anchor number `anchorId`.
    event Anchored(address indexed operator, uint256 indexed anchorId, bytes32 root, uint64 firstIndex, uint64 count);

    /// @notice `account` is not an operator registered in the station registry.
    error NotRegisteredOperator(address account);
    /// @notice The range must start at `expected`, the end of the operator's last anchor (given: `firstIndex`).
    error RangeNotContiguous(address operator, uint64 expected, uint64 firstIndex);
    /// @notice An anchor covers at least one record and has a non-zero root.
    error EmptyAnchor();
    /// @notice `operator` has no anchor number `anchorId`.
    error UnknownAnchor(address operator, uint256 anchorId);

    /// @notice Anchor `root` over `count` records starting at `firstIndex` (must equal `nextIndex(msg.sender)`).
    /// @return anchorId The anchor's number among the caller's anchors (0 for the first).
    function anchor(bytes32 root, uint64 firstIndex, uint64 count) external returns (uint256 anchorId);

    /// @notice The anchor number `anchorId` of `operator`; reverts UnknownAnchor if there is none.
    function anchorOf(address operator, uint256 anchorId) external view returns (Anchor memory);

    /// @notice How many anchors `operator` has made.
    function anchorCount(address operator) external view returns (uint256);

    /// @notice The log index the next anchor of `operator` must start at (records below it are anchored).
    function nextIndex(address operator) external view returns (uint64);

    /// @notice The station registry whose operators may anchor (the deployment's escrow).
    function registry() external view returns (address);

    /// @notice Whether `leaf` is in anchor `anchorId` of `operator`, by its Merkle `proof`.
    function verify(address operator, uint256 anchorId, bytes32[] calldata proof, bytes32 leaf)
        external
        view
        returns (bool);
}
