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

    /// @notice The OCPP idTag that names session `sessionId` at a station with a signing meter, and that its
    ///         meter signs as the identification (ID) of the session's records: `EV` and the first 9 bytes of
    ///         keccak256(sessionId) in upper-case hex, 20 characters (OCPP 1.6's longest idTag).
    function idTag(uint256 sessionId) internal pure returns (bytes20 tag) {
        bytes32 hash = keccak256(abi.encode(sessionId));
        tag = bytes20(bytes2("EV"));
        for (uint256 i; i < 18; ++i) {
            uint8 nibble = uint8(hash[i / 2]) >> (i % 2 == 0 ? 4 : 0) & 0x0f;
            tag |= bytes20(bytes1(nibble < 10 ? nibble + 0x30 : nibble + 0x37)) >> (8 * (i + 2));
        }
    }

    /// @notice The driver of `sessionId`.
    function driverOf(uint256 sessionId) internal pure returns (address) {
        return address(uint160(sessionId >> 96));
    }
}
