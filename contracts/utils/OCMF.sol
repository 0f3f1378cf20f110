// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IMeterRecords} from "../interfaces/IMeterRecords.sol";

/// @title OCMF field reader
/// @notice Reads single fields of a signed OCMF payload (the JSON between `OCMF|` and `|{`, byte for byte
///         as the meter signed it) without parsing the JSON: the caller names the byte offset of each
///         field's key, and the reader checks that the key is there before it reads the value behind it.
///         Only the meter can produce a signed payload, so a caller cannot add keys of its own; payloads
///         must be compact JSON (no space between a key, its colon and its value), as meters write them.
/// @dev Values are read a 32-byte word at a time (zero past the payload's end): strings of at most 31
///      bytes (an idTag is at most 20, a meter serial in practice under 20), numbers of at most 31 characters.
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

    uint256 private constant BRACES = 0x7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d; // "}"
    bytes32 private constant QUOTES = 0x2222222222222222222222222222222222222222222222222222222222222222;
    uint256 private constant LOW7 = 0x7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f;
    uint256 private constant HIGH1 = 0x8080808080808080808080808080808080808080808080808080808080808080;

    /// @dev The two-letter names of the fields, in Field order.
    uint96 private constant NAMES = 0x49444d535047545852565255; // "IDMSPGTXRVRU"

    /// @notice The string field `field` as a word (its bytes, zero after them) and its length.
    function text(bytes calldata payload, uint96 offsets, Field field) internal pure returns (bytes32 value, uint256 length) {
        (bytes32 word, uint256 start) = _value(payload, offsets, field, true);
        // The first quote: XOR makes its byte zero; a byte's top bit of `zeros` is set exactly when it is zero.
        uint256 x = uint256(word ^ QUOTES);
        uint256 zeros = ~(((x & LOW7) + LOW7) | x) & HIGH1;
        if (zeros == 0) revert IMeterRecords.OCMFMalformedField(uint8(field), start);
        length = (255 - Math.log2(zeros)) / 8;
        value = word & ~(bytes32(type(uint256).max) >> (8 * length));
    }

    /// @notice Whether the string field `field` is exactly the `length` first bytes of `value` (zero after them).
    function textEquals(bytes calldata payload, uint96 offsets, Field field, bytes32 value, uint256 length)
        internal
        pure
        returns (bool)
    {
        (bytes32 word,) = _value(payload, offsets, field, true);
        bytes32 quote = bytes32(bytes1('"')) >> (8 * length);
        return word & ~(bytes32(type(uint256).max) >> (8 * length + 8)) == value | quote;
    }

    /// @notice The first byte of the string field `field` (e.g. the reading reason `B` of `"TX":"B"`).
    function firstChar(bytes calldata payload, uint96 offsets, Field field) internal pure returns (bytes1) {
        (bytes32 word,) = _value(payload, offsets, field, true);
        return word[0];
    }

    /// @notice Whether TX, RV and RU are fields of one reading: in that order (as OCMF lists them), at most
    ///         96 bytes from TX to RU, no `}` between them; so a record with several readings cannot mix them.
    function oneReading(bytes calldata payload, uint96 offsets) internal pure returns (bool ok) {
        assembly ("memory-safe") {
            let from := and(shr(48, offsets), 0xffff) // TX
            let rv := and(shr(64, offsets), 0xffff)
            let to := and(shr(80, offsets), 0xffff) // RU
            ok := and(and(lt(from, rv), lt(rv, to)), and(lt(sub(to, from), 97), iszero(gt(to, payload.length))))
            for { let at := from } and(ok, lt(at, to)) { at := add(at, 32) } {
                let word := calldataload(add(payload.offset, at))
                let left := sub(to, at)
                if lt(left, 32) { word := and(word, not(shr(mul(8, left), not(0)))) }
                let x := xor(word, BRACES)
                if and(not(or(add(and(x, LOW7), LOW7), x)), HIGH1) { ok := 0 }
            }
        }
    }

    /// @notice The transaction pagination number: `n` of `"PG":"Tn"` (fiscal records, `Fn`, are refused).
    function pagination(bytes calldata payload, uint96 offsets) internal pure returns (uint256 page) {
        (bytes32 word, uint256 start) = _value(payload, offsets, Field.PG, true);
        uint256 end;
        (page, end) = _digits(word, 1);
        if (word[0] != "T" || end == 1 || end == 32 || word[end] != '"') revert IMeterRecords.OCMFMalformedField(uint8(Field.PG), start);
    }

    /// @notice The reading's value in whole Wh (rounded down), from RV in the unit RU names (`kWh` or `Wh`).
    function wattHours(bytes calldata payload, uint96 offsets) internal pure returns (uint256) {
        (bytes32 word, uint256 start) = _value(payload, offsets, Field.RV, false);
        (uint256 whole, uint256 end) = _digits(word, 0);
        uint256 milli;
        if (end < 31 && word[end] == ".") {
            (uint256 fraction, uint256 stop) = _digits(word, end + 1);
            uint256 decimals = stop - end - 1;
            if (decimals == 0) revert IMeterRecords.OCMFMalformedField(uint8(Field.RV), start);
            unchecked {
                milli = decimals > 3 ? fraction / 10 ** (decimals - 3) : fraction * 10 ** (3 - decimals);
            }
            end = stop;
        }
        if (end == 0 || end == 32 || (word[end] != "," && word[end] != "}")) revert IMeterRecords.OCMFMalformedField(uint8(Field.RV), start);
        (bytes32 unit,) = _value(payload, offsets, Field.RU, true);
        if (bytes4(unit) == 'kWh"') return whole * 1000 + milli;
        if (bytes3(unit) == 'Wh"') return whole;
        revert IMeterRecords.OCMFMalformedField(uint8(Field.RU), uint16(offsets >> (16 * uint256(Field.RU))));
    }

    /// @dev The word after `"XX":` (after `"XX":"` for a string) and its offset, after checking the key.
    ///      The word is zero past the payload's end; calldataload past it reads other calldata, hence the mask.
    function _value(bytes calldata payload, uint96 offsets, Field field, bool quoted)
        private
        pure
        returns (bytes32 word, uint256 start)
    {
        uint256 at;
        bool found;
        assembly ("memory-safe") {
            let shift := mul(16, field)
            at := and(shr(shift, offsets), 0xffff)
            let keyLength := add(5, quoted)
            start := add(at, keyLength)
            let name := and(shr(sub(80, shift), NAMES), 0xffff)
            let key := or(or(shl(248, 0x22), shl(232, name)), shl(216, 0x223a))
            if quoted { key := or(key, shl(208, 0x22)) }
            let keyMask := not(shr(mul(8, keyLength), not(0)))
            let length := payload.length
            found := and(iszero(gt(start, length)), eq(and(calldataload(add(payload.offset, at)), keyMask), key))
            word := calldataload(add(payload.offset, start))
            let left := sub(length, start)
            if lt(left, 32) { word := and(word, not(shr(mul(8, left), not(0)))) }
        }
        if (!found) revert IMeterRecords.OCMFMalformedField(uint8(field), at);
    }

    /// @dev The decimal number of the digits of `word` from byte `start` on, and the index after them.
    function _digits(bytes32 word, uint256 start) private pure returns (uint256 value, uint256 end) {
        assembly ("memory-safe") {
            for { end := start } lt(end, 32) { end := add(end, 1) } {
                let digit := sub(byte(end, word), 0x30)
                if gt(digit, 9) { break }
                value := add(mul(value, 10), digit)
            }
        }
    }
}
