// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {P256} from "@openzeppelin/contracts/utils/cryptography/P256.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ISessionEscrow} from "./interfaces/ISessionEscrow.sol";
import {OCMF} from "./utils/OCMF.sol";
import {SessionIds} from "./utils/SessionIds.sol";

/// @title Meter readings
/// @notice "No proof, no pay": the billed readings of a session at a station with a meter key come from the
///         session's OCMF Begin and End records, signed by that key (ECDSA P-256 over SHA-256 of the payload,
///         verified with OpenZeppelin's P256: the P256VERIFY precompile, a Solidity fallback elsewhere).
/// @dev High-s signatures are refused (HighSSignature), not normalised: OCMF meters sign with either half, and
///      the submitter flips s to N - s (ev_network.ocmf does), which keeps one accepted form per signature.
abstract contract MeterReadings is ISessionEscrow {
    using SafeCast for uint256;

    /// @dev The reading reasons that end a transaction, as bits: E (end), L (local), R (remote), A (abort), P (power).
    uint256 private constant END_REASONS = (1 << 0x45) | (1 << 0x4c) | (1 << 0x52) | (1 << 0x41) | (1 << 0x50);

    /// @dev The signed readings (Wh) of a session's Begin and End records, after checking that the key
    ///      (qx, qy) signed both, that both name `sessionId`, come from one meter, in order, and that End is
    ///      not below Begin.
    function _signedReadings(
        uint256 sessionId,
        bytes32 qx,
        bytes32 qy,
        MeterRecord calldata begin,
        MeterRecord calldata end
    ) internal view returns (uint40 meterStart, uint40 meterStop) {
        _checkSignature(sessionId, Record.Begin, begin, qx, qy);
        _checkSignature(sessionId, Record.End, end, qx, qy);

        (bytes calldata first, uint96 firstAt) = (begin.payload, begin.offsets);
        (bytes calldata last, uint96 lastAt) = (end.payload, end.offsets);
        bytes32 tag = bytes32(SessionIds.idTag(sessionId));
        if (!OCMF.textEquals(first, firstAt, OCMF.Field.ID, tag, 20)) revert RecordNotForSession(sessionId, Record.Begin);
        if (!OCMF.textEquals(last, lastAt, OCMF.Field.ID, tag, 20)) revert RecordNotForSession(sessionId, Record.End);
        bytes1 reason = OCMF.firstChar(first, firstAt, OCMF.Field.TX);
        if (reason != "B") revert UnexpectedReadingReason(sessionId, Record.Begin, reason);
        reason = OCMF.firstChar(last, lastAt, OCMF.Field.TX);
        if ((END_REASONS >> uint8(reason)) & 1 == 0) revert UnexpectedReadingReason(sessionId, Record.End, reason);

        (bytes32 beginSerial, uint256 beginLength) = OCMF.text(first, firstAt, OCMF.Field.MS);
        (bytes32 endSerial, uint256 endLength) = OCMF.text(last, lastAt, OCMF.Field.MS);
        if (beginSerial != endSerial || beginLength != endLength) {
            revert MeterSerialMismatch(sessionId, beginSerial, endSerial);
        }
        uint256 beginPage = OCMF.pagination(first, firstAt);
        uint256 endPage = OCMF.pagination(last, lastAt);
        if (endPage <= beginPage) revert PaginationNotAdvancing(sessionId, beginPage, endPage);

        if (!OCMF.oneReading(first, firstAt)) revert MixedReading(sessionId, Record.Begin);
        if (!OCMF.oneReading(last, lastAt)) revert MixedReading(sessionId, Record.End);
        meterStart = OCMF.wattHours(first, firstAt).toUint40();
        meterStop = OCMF.wattHours(last, lastAt).toUint40();
        if (meterStop < meterStart) revert MeterBelowStart(sessionId, meterStart, meterStop);
    }

    function _checkSignature(uint256 sessionId, Record which, MeterRecord calldata record, bytes32 qx, bytes32 qy)
        private
        view
    {
        if (uint256(record.s) > P256.N / 2) revert HighSSignature(sessionId, which);
        if (!P256.verifyNative(sha256(record.payload), record.r, record.s, qx, qy)) {
            revert InvalidMeterSignature(sessionId, which);
        }
    }
}
