// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Signed meter records
/// @notice The signed OCMF records ("no proof, no pay") a session at a station with a meter key settles on, and
///         every way they can be refused. Shared by the escrow (which takes them) and the meter verifier (which
///         checks them), so the escrow's ABI names each refusal.
///
///         Two shapes are accepted: a Begin record and an End record (one reading each, signed separately), or
///         one record carrying both readings (Begin and End in one signed dataset, as meters write it at the
///         end of a transaction: one signature to verify).
interface IMeterRecords {
    /// @notice Which reading of a session: its Begin or its End (in the one-record shape both are in the
    ///         same record, and a refusal of the record itself names Begin).
    enum Record {
        Begin,
        End
    }

    /// @notice A signed OCMF record (a meter reading, or both readings) as the escrow reads it.
    /// @param payload The payload section (the JSON between `OCMF|` and `|{`), byte for byte as the meter signed it.
    /// @param r The signature's r.
    /// @param s The signature's s, in the lower half of the curve order (flip a high s to N - s: both verify).
    /// @param offsets Byte offsets in `payload` of the keys the verifier reads, 16 bits each, lowest first:
    ///        `"ID":`, `"MS":`, `"PG":`, then `"TX":`, `"RV":`, `"RU":` of the billed reading (of the Begin
    ///        reading in the one-record shape), then in the one-record shape `"TX":`, `"RV":`, `"RU":` of the
    ///        End reading (zero in the two-record shape).
    struct MeterRecord {
        bytes payload;
        bytes32 r;
        bytes32 s;
        uint144 offsets;
    }

    /// @notice The `record` of session `sessionId` was not signed by the station's meter key (the key registered
    ///         when the session started).
    error InvalidMeterSignature(uint256 sessionId, Record record);
    /// @notice The signature of `record` has a high s (above N/2): submit N - s instead.
    error HighSSignature(uint256 sessionId, Record record);
    /// @notice The `record`'s signed identification is not session `sessionId`'s idTag.
    error RecordNotForSession(uint256 sessionId, Record record);
    /// @notice The reading reason `reason` of the `record` reading is not B (Begin) or an end reason (E, L, R, A, P).
    error UnexpectedReadingReason(uint256 sessionId, Record record, bytes1 reason);
    /// @notice The reason, value and unit named for the `record` reading are not fields of one reading.
    error MixedReading(uint256 sessionId, Record record);
    /// @notice End's pagination `endPage` does not follow Begin's `beginPage` (two records), or in one record
    ///         the End reading does not follow the Begin reading (both pages are then the record's).
    error PaginationNotAdvancing(uint256 sessionId, uint256 beginPage, uint256 endPage);
    /// @notice Begin and End were signed by meters with different serial numbers (as text, zero-padded).
    error MeterSerialMismatch(uint256 sessionId, bytes32 beginSerial, bytes32 endSerial);
    /// @notice The End reading `meterStop` of session `sessionId` is below its Begin reading `meterStart` (Wh).
    error MeterBelowStart(uint256 sessionId, uint40 meterStart, uint40 meterStop);
    /// @notice A signed settlement carries one record (both readings) or two (Begin, End); this one has `count`.
    error RecordCount(uint256 sessionId, uint256 count);
    /// @notice The payload does not hold `field` (an index: ID, MS, PG, TX, RV, RU) at byte `offset` in the
    ///         form the reader accepts.
    error OCMFMalformedField(uint8 field, uint256 offset);
}
