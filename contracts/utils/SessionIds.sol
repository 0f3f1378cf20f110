// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Session ids
/// @notice A session id packs the driver, one of the driver's lanes and the lane's sequence number:
///         `driver << 96 | lane << 16 | seq`. Written in hex, an id is the driver's address followed by the
///         lane and the sequence number.
library SessionIds {
    /// @dev Bits between the sequence number (0-15), the lane (16-23) and the driver (96-255): always zero.
    uint256 private constant UNUSED_BITS = ((1 << 96) - 1) ^ ((1 << 24) - 1);

    /// @notice The id of session `seq` on `lane` of `driver`.
    function pack(address driver, uint256 lane, uint16 seq) internal pure returns (uint256) {
        return (uint256(uint160(driver)) << 96) | (uint256(uint8(lane)) << 16) | seq;
    }

    /// @notice The driver, lane and sequence number of `sessionId`; `wellFormed` is false when bits outside
    ///         those fields are set.
    function unpack(uint256 sessionId) internal pure returns (address driver, uint8 lane, uint16 seq, bool wellFormed) {
        return (driverOf(sessionId), uint8(sessionId >> 16), uint16(sessionId), sessionId & UNUSED_BITS == 0);
    }

    /// @notice The driver of `sessionId`.
    function driverOf(uint256 sessionId) internal pure returns (address) {
        return address(uint160(sessionId >> 96));
    }
}
