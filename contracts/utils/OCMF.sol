// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title OCMF field reader
/// @notice Reads single fields of a signed OCMF payload (the JSON between `OCMF|` and `|{`, byte for byte
///         as the meter signed it) without parsing the JSON: the caller names the byte offset of each
///         field's key, and the reader checks that the key is there before it reads the value behind it.
///         Only the meter can produce a signed payload, so a caller cannot add keys of its own; payloads
///         must be compact JSON (no space between a key, its colon and its value), as meters write them.
library OCMF {
    /// @notice The fields the escrow reads: ID (identification), MS (meter serial), PG (pagination), and of
    ///         the reading: TX (reason), RV (value) and RU (unit).
    enum Field {
        ID,
        MS,
        PG,
        TX,
        RV,
        RU
    }

    /// @notice The payload does not hold `field` at byte `offset` in the form the reader accepts.
    error OCMFMalformedField(Field field, uint256 offset);

    /// @dev The two-letter names of the fields, in Field order.
    bytes12 private constant NAMES = "IDMSPGTXRVRU";

    /// @notice The byte offset of `field`'s key in a record's packed offsets (16 bits a field, ID lowest).
    function offsetOf(uint96 offsets, Field field) internal pure returns (uint256) {
        return uint16(offsets >> (16 * uint256(field)));
    }

    /// @notice The value of the string field `field`: the bytes between `"XX":"` and the next `"`.
    function text(bytes calldata payload, uint96 offsets, Field field) internal pure returns (bytes calldata value) {
        uint256 start = _valueStart(payload, offsets, field, true);
        for (uint256 end = start; end < payload.length; ++end) {
            if (payload[end] == '"') return payload[start:end];
        }
        revert OCMFMalformedField(field, start);
    }

    /// @notice Whether the string field `field` is exactly the first `length` bytes of `value`.
    function textEquals(bytes calldata payload, uint96 offsets, Field field, bytes32 value, uint256 length)
        internal
        pure
        returns (bool)
    {
        uint256 start = _valueStart(payload, offsets, field, true);
        if (start + length >= payload.length || payload[start + length] != '"') return false;
        return bytes32(payload[start:start + length]) == value;
    }

    /// @notice The first byte of the string field `field` (e.g. the reading reason `B` of `"TX":"B"`).
    function firstChar(bytes calldata payload, uint96 offsets, Field field) internal pure returns (bytes1) {
        uint256 start = _valueStart(payload, offsets, field, true);
        if (start >= payload.length) revert OCMFMalformedField(field, start);
        return payload[start];
    }

    /// @notice The transaction pagination number: `n` of `"PG":"Tn"` (fiscal records, `Fn`, are refused).
    function pagination(bytes calldata payload, uint96 offsets) internal pure returns (uint256 page) {
        uint256 start = _valueStart(payload, offsets, Field.PG, true);
        if (start >= payload.length || payload[start] != "T") revert OCMFMalformedField(Field.PG, start);
        uint256 end;
        (page, end) = _digits(payload, start + 1);
        if (end == start + 1 || end >= payload.length || payload[end] != '"') revert OCMFMalformedField(Field.PG, start);
    }

    /// @notice The reading's value in whole Wh (rounded down), from RV in the unit RU names (`kWh` or `Wh`).
    function wattHours(bytes calldata payload, uint96 offsets) internal pure returns (uint256) {
        uint256 start = _valueStart(payload, offsets, Field.RV, false);
        (uint256 whole, uint256 end) = _digits(payload, start);
        if (end == start) revert OCMFMalformedField(Field.RV, start);
        uint256 fraction;
        uint256 decimals;
        if (end < payload.length && payload[end] == ".") {
            uint256 point = end;
            (fraction, end) = _digits(payload, point + 1);
            decimals = end - point - 1;
            if (decimals == 0 || decimals > 18) revert OCMFMalformedField(Field.RV, start);
        }
        bytes calldata unit = text(payload, offsets, Field.RU);
        if (keccak256(unit) == keccak256("Wh")) return whole;
        if (keccak256(unit) != keccak256("kWh")) revert OCMFMalformedField(Field.RU, offsetOf(offsets, Field.RU));
        return whole * 1000 + (fraction * 1000) / 10 ** decimals;
    }

    /// @dev Offset of the value behind `"XX":` (and the opening quote of a string), after checking the key.
    function _valueStart(bytes calldata payload, uint96 offsets, Field field, bool quoted) private pure returns (uint256) {
        uint256 at = offsetOf(offsets, field);
        uint256 length = quoted ? 6 : 5;
        bytes2 name = bytes2(NAMES << (16 * uint256(field)));
        bytes6 key = bytes6(bytes1('"')) | (bytes6(name) >> 8) | (bytes6(bytes2('":')) >> 24);
        if (quoted) key |= bytes6(bytes1('"')) >> 40;
        if (at + length > payload.length || bytes6(payload[at:at + length]) != key) revert OCMFMalformedField(field, at);
        return at + length;
    }

    /// @dev The decimal number of the digits from `start` on, and the offset of the first byte after them.
    function _digits(bytes calldata payload, uint256 start) private pure returns (uint256 value, uint256 end) {
        for (end = start; end < payload.length && end < start + 30; ++end) {
            uint8 c = uint8(payload[end]);
            if (c < 0x30 || c > 0x39) break;
            value = value * 10 + (c - 0x30);
        }
    }
}
