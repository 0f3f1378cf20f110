// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IMeterRecords} from "./IMeterRecords.sol";

/// @title Meter verifier
/// @notice A stateless check of a session's signed OCMF records against a P-256 meter key the caller names
///         (the escrow passes the key its registry held when the session started). In the spirit of
///         OpenZeppelin's signature verifier contracts (ERC-7913): no storage, the key is an argument, the
///         answer depends on the arguments alone; the escrow calls it on the signed settle path only.
interface IMeterVerifier is IMeterRecords {
    /// @notice The signed Begin and End readings of session `sessionId`, after checking that key (qx, qy)
    ///         signed every record (ECDSA P-256 over SHA-256 of the payload, low s), that each names the
    ///         session (signed ID = its idTag), that Begin's reason is B and End's an end reason, that the
    ///         readings are in order (End's page after Begin's, or End after Begin in one record), come from one
    ///         meter (same MS) and that End is not below Begin. Reverts with the refusal otherwise.
    /// @param sessionId The session (its idTag is what the records must be signed for).
    /// @param qx The meter key's x.
    /// @param qy The meter key's y.
    /// @param records [Begin, End], or [one record holding both readings].
    /// @return meterStart The Begin reading, in Wh (rounded down).
    /// @return meterStop The End reading, in Wh (rounded down).
    function readings(uint256 sessionId, bytes32 qx, bytes32 qy, MeterRecord[] calldata records)
        external
        view
        returns (uint40 meterStart, uint40 meterStop);
}
