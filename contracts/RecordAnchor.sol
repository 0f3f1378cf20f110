// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Time} from "@openzeppelin/contracts/utils/types/Time.sol";
import {IRecordAnchor} from "./interfaces/IRecordAnchor.sol";
import {StationRegistry} from "./StationRegistry.sol";

/// @title Record anchor
/// @notice The chain side of the Core Client's transaction record: registered operators anchor the
///         Merkle roots of consecutive ranges of their logs, one transaction per anchor whatever the
///         number of records in it.
contract RecordAnchor is IRecordAnchor {
    /// @inheritdoc IRecordAnchor
    address public immutable registry;

    mapping(address operator => Anchor[]) private _anchors;

    /// @param registry_ The station registry (the deployment's SessionEscrow) that lists the operators.
    constructor(address registry_) {
        registry = registry_;
    }

    /// @inheritdoc IRecordAnchor
    function anchor(bytes32 root, uint64 firstIndex, uint64 count) external returns (uint256 anchorId) {
        if (root == bytes32(0) || count == 0) revert EmptyAnchor();
        if (!StationRegistry(registry).operatorOf(msg.sender).registered) revert NotRegisteredOperator(msg.sender);
        uint64 expected = nextIndex(msg.sender);
        if (firstIndex != expected) revert RangeNotContiguous(msg.sender, expected, firstIndex);
        SafeCast.toUint64(uint256(firstIndex) + count); // the range's end must fit: nextIndex reads it back

        Anchor[] storage anchors = _anchors[msg.sender];
        anchorId = anchors.length;
        anchors.push(Anchor(root, firstIndex, count, Time.timestamp(), Time.blockNumber()));
        emit Anchored(msg.sender, anchorId, root, firstIndex, count);
    }

    /// @inheritdoc IRecordAnchor
    function anchorOf(address operator, uint256 anchorId) public view returns (Anchor memory) {
        Anchor[] storage anchors = _anchors[operator];
        if (anchorId >= anchors.length) revert UnknownAnchor(operator, anchorId);
        return anchors[anchorId];
    }

    /// @inheritdoc IRecordAnchor
    function anchorCount(address operator) external view returns (uint256) {
        return _anchors[operator].length;
    }

    /// @inheritdoc IRecordAnchor
    function nextIndex(address operator) public view returns (uint64) {
        Anchor[] storage anchors = _anchors[operator];
        uint256 n = anchors.length;
        if (n == 0) return 0;
        Anchor storage last = anchors[n - 1];
        return SafeCast.toUint64(uint256(last.firstIndex) + last.count);
    }

    /// @inheritdoc IRecordAnchor
    function verify(address operator, uint256 anchorId, bytes32[] calldata proof, bytes32 leaf)
        external
        view
        returns (bool)
    {
        return MerkleProof.verifyCalldata(proof, anchorOf(operator, anchorId).root, leaf);
    }
}
