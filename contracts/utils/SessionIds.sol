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
    function idTag(uint256 sessionId) internal pure returns (bytes20) {
        // The 9 bytes, each spread into a 16-bit lane, then split into its two nibbles (one a byte, high first).
        uint256 x = uint256(keccak256(abi.encode(sessionId))) >> 184;
        x = (x | (x << 64)) & 0x0000000000000000ffffffffffffffff0000000000000000ffffffffffffffff;
        x = (x | (x << 32)) & 0x00000000ffffffff00000000ffffffff00000000ffffffff00000000ffffffff;
        x = (x | (x << 16)) & 0x0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff;
        x = (x | (x << 8)) & 0x00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff;
        x = ((x << 4) & 0x0f000f000f000f000f000f000f000f000f000f000f000f000f000f000f000f00) | (x & 0x000f000f000f000f000f000f000f000f000f000f000f000f000f000f000f000f);
        // Each nibble to its upper-case hex digit: '0' + n, and 7 more from 10 (A) on.
        uint256 letters = ((x + 0x0606060606060606060606060606060606060606060606060606060606060606) >> 4)
            & 0x0101010101010101010101010101010101010101010101010101010101010101;
        x += 0x3030303030303030303030303030303030303030303030303030303030303030 + letters * 7;
        return bytes20(uint160(0x4556 << 144 | (x & ((1 << 144) - 1))));
    }

    /// @notice The driver of `sessionId`.
    function driverOf(uint256 sessionId) internal pure returns (address) {
        return address(uint160(sessionId >> 96));
    }
}
