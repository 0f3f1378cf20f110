// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IMeterVerifier} from "./interfaces/IMeterVerifier.sol";
import {OCMF} from "./utils/OCMF.sol";
import {SessionIds} from "./utils/SessionIds.sol";

/// @title OCMF meter verifier
/// @notice "No proof, no pay": checks a session's signed OCMF records (ECDSA P-256 over SHA-256 of the payload,
///         verified with the P256VERIFY precompile at 0x100, EIP-7951 / RIP-7212) and returns the signed Begin
///         and End readings. Stateless: the key is an argument, so one deployment serves every escrow and
///         station, and the escrow keeps its bytecode for the session state machine.
/// @dev Gas: every record is read where it lies in calldata (its payload is copied to memory once, for
///      SHA-256), and only the fields billed are read, at the offsets the caller names. The key is the one the
///      registry checked to be on the curve; r and s out of range, like a key off the curve, make the
///      precompile answer "invalid". On a chain without the precompile every record is refused as not signed
///      (InvalidMeterSignature), and the driver reclaims.
///      High-s signatures are refused (HighSSignature), not normalised: OCMF meters sign with either half, and
///      the submitter flips s to N - s (ev_network.ocmf does), which keeps one accepted form per signature.
contract OCMFVerifier is IMeterVerifier {
    using SafeCast for uint256;

    /// @dev The reading reasons that end a transaction, as bits: E (end), L (local), R (remote), A (abort), P (power).
    uint256 private constant END_REASONS = (1 << 0x45) | (1 << 0x4c) | (1 << 0x52) | (1 << 0x41) | (1 << 0x50);
    /// @dev Half the order of P-256: the highest low s.
    uint256 private constant HALF_N = 0x7fffffff800000007fffffffffffffffde737d56d38bcf4279dce5617e3192a8;
    /// @dev The offsets of ID, MS and PG: the record's own fields, shared by both readings of one record.
    uint144 private constant HEAD = (1 << 48) - 1;

    /// @inheritdoc IMeterVerifier
    function readings(uint256 sessionId, bytes32 qx, bytes32 qy, MeterRecord[] calldata records)
        external
        view
        returns (uint40 meterStart, uint40 meterStop)
    {
        bytes32 tag = bytes32(SessionIds.idTag(sessionId));
        if (records.length == 1) {
            (meterStart, meterStop) = _oneRecord(sessionId, qx, qy, tag, records[0]);
        } else if (records.length == 2) {
            (meterStart, meterStop) = _twoRecords(sessionId, qx, qy, tag, records[0], records[1]);
        } else {
            revert RecordCount(sessionId, records.length);
        }
        if (meterStop < meterStart) revert MeterBelowStart(sessionId, meterStart, meterStop);
    }

    /// @dev Begin and End readings in one signed record: one signature; End's reading after Begin's in RD.
    function _oneRecord(uint256 sessionId, bytes32 qx, bytes32 qy, bytes32 tag, MeterRecord calldata record)
        private
        view
        returns (uint40 meterStart, uint40 meterStop)
    {
        (bytes calldata payload, uint144 offsets) = _checkRecord(sessionId, Record.Begin, record, qx, qy, tag);
        uint96 begin = uint96(offsets);
        uint96 end = uint96((offsets & HEAD) | ((offsets >> 48) & ~HEAD));
        _checkReason(sessionId, Record.Begin, payload, begin);
        _checkReason(sessionId, Record.End, payload, end);
        uint256 page = OCMF.pagination(payload, begin);
        // End's reason after Begin's unit: two distinct readings, in the order the meter listed them.
        if (uint16(end >> 48) <= uint16(begin >> 80)) revert PaginationNotAdvancing(sessionId, page, page);
        meterStart = _wattHours(sessionId, Record.Begin, payload, begin);
        meterStop = _wattHours(sessionId, Record.End, payload, end);
    }

    /// @dev A Begin record and an End record, each signed: one meter (same MS), End's page after Begin's.
    function _twoRecords(
        uint256 sessionId,
        bytes32 qx,
        bytes32 qy,
        bytes32 tag,
        MeterRecord calldata begin,
        MeterRecord calldata end
    ) private view returns (uint40 meterStart, uint40 meterStop) {
        (bytes calldata first, uint144 beginOffsets) = _checkRecord(sessionId, Record.Begin, begin, qx, qy, tag);
        (bytes calldata last, uint144 endOffsets) = _checkRecord(sessionId, Record.End, end, qx, qy, tag);
        (uint96 firstAt, uint96 lastAt) = (uint96(beginOffsets), uint96(endOffsets));
        _checkReason(sessionId, Record.Begin, first, firstAt);
        _checkReason(sessionId, Record.End, last, lastAt);
        (bytes32 beginSerial, uint256 beginLength) = OCMF.text(first, firstAt, OCMF.Field.MS);
        (bytes32 endSerial, uint256 endLength) = OCMF.text(last, lastAt, OCMF.Field.MS);
        if (beginSerial != endSerial || beginLength != endLength) {
            revert MeterSerialMismatch(sessionId, beginSerial, endSerial);
        }
        uint256 beginPage = OCMF.pagination(first, firstAt);
        uint256 endPage = OCMF.pagination(last, lastAt);
        if (endPage <= beginPage) revert PaginationNotAdvancing(sessionId, beginPage, endPage);
        meterStart = _wattHours(sessionId, Record.Begin, first, firstAt);
        meterStop = _wattHours(sessionId, Record.End, last, lastAt);
    }

    /// @dev Reverts unless the reason of the `which` reading (at the TX offset of `offsets`) is B for Begin, an
    ///      end reason for End.
    function _checkReason(uint256 sessionId, Record which, bytes calldata payload, uint96 offsets) private pure {
        bytes1 reason = OCMF.firstChar(payload, offsets, OCMF.Field.TX);
        bool expected = which == Record.Begin ? reason == "B" : (END_REASONS >> uint8(reason)) & 1 != 0;
        if (!expected) revert UnexpectedReadingReason(sessionId, which, reason);
    }

    /// @dev The `which` reading in Wh, after checking that its reason, value and unit belong to one reading.
    function _wattHours(uint256 sessionId, Record which, bytes calldata payload, uint96 offsets)
        private
        pure
        returns (uint40)
    {
        if (!OCMF.oneReading(payload, offsets)) revert MixedReading(sessionId, which);
        return OCMF.wattHours(payload, offsets).toUint40();
    }

    /// @dev Reverts unless key (qx, qy) signed `record` (low s) and its signed ID is the session's idTag; returns
    ///      its payload and offsets (each field of the record decoded once).
    function _checkRecord(
        uint256 sessionId,
        Record which,
        MeterRecord calldata record,
        bytes32 qx,
        bytes32 qy,
        bytes32 tag
    ) private view returns (bytes calldata payload, uint144 offsets) {
        (payload, offsets) = (record.payload, record.offsets);
        (bytes32 r, bytes32 s) = (record.r, record.s);
        if (uint256(s) > HALF_N) revert HighSSignature(sessionId, which);
        if (!_signed(payload, r, s, qx, qy)) revert InvalidMeterSignature(sessionId, which);
        if (!OCMF.textEquals(payload, uint96(offsets), OCMF.Field.ID, tag, 20)) {
            revert RecordNotForSession(sessionId, which);
        }
    }

    /// @dev Whether key (qx, qy) signed `payload` with (r, s): SHA-256 (precompile 0x02) of the payload, copied
    ///      from calldata to scratch memory once, then P256VERIFY (0x100), which answers 1 for a valid signature
    ///      and nothing for an invalid one.
    function _signed(bytes calldata payload, bytes32 r, bytes32 s, bytes32 qx, bytes32 qy)
        private
        view
        returns (bool valid)
    {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, payload.offset, payload.length)
            if iszero(staticcall(gas(), 0x02, ptr, payload.length, ptr, 0x20)) { revert(0, 0) }
            mstore(add(ptr, 0x20), r)
            mstore(add(ptr, 0x40), s)
            mstore(add(ptr, 0x60), qx)
            mstore(add(ptr, 0x80), qy)
            mstore(0x00, 0)
            let called := staticcall(gas(), 0x100, ptr, 0xa0, 0x00, 0x20)
            valid := and(called, eq(mload(0x00), 1))
        }
    }
}
