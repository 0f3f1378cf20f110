// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IMeterRecords} from "./IMeterRecords.sol";
import {IMeterVerifier} from "./IMeterVerifier.sol";
import {IStationRegistry} from "./IStationRegistry.sol";

/// @title Session escrow interface
/// @notice Pre-paid charging sessions, settled one by one in real time.
///
///         Requested --start(operator)--> Active --settle(operator)--> Settled
///         Requested --reject(operator) | cancel(driver, after startTimeout)--> Cancelled (full refund)
///         Active --refundActive(operator)--> Cancelled (full refund)
///         Active --reclaim(driver, after maxDuration + reclaimGrace, never settled)--> Expired (full refund)
interface ISessionEscrow is IStationRegistry, IMeterRecords {
    /// @notice A session's state. Cancelled: refunded in full (rejected or cancelled before it started, or
    ///         refunded by the operator after). Closed: the session ended (settled, cancelled or expired) and its
    ///         lane holds a newer one.
    enum SessionState {
        None,
        Requested,
        Active,
        Settled,
        Cancelled,
        Expired,
        Closed
    }

    /// @notice Why a session was cancelled.
    enum CancelReason {
        DriverCancelled,
        StationOffline,
        ConnectorBusy,
        ChargerRejected,
        Other
    }

    /// @notice A session as getSession returns it (fields past `state` are zero for None and Closed).
    /// @param driver The driver who opened it.
    /// @param lane The driver's lane that holds it.
    /// @param seq Its sequence number in the lane (from 1).
    /// @param state Its state.
    /// @param deposit Tokens locked for it.
    /// @param stationId The station.
    /// @param tariffId The tariff snapshotted at open.
    /// @param since When it entered its state: opened, started or ended (unix seconds; a settled session's end
    ///        time as billed).
    /// @param meterStart Meter reading at start, in Wh.
    struct SessionInfo {
        address driver;
        uint8 lane;
        uint16 seq;
        SessionState state;
        uint96 deposit;
        uint32 stationId;
        uint32 tariffId;
        uint32 since;
        uint40 meterStart;
    }

    /// @notice What settles a session at a station with a meter key: the session's signed records, in either
    ///         shape: [Begin, End] (one reading each) or [one record holding both readings].
    /// @param sessionId An Active session at one of the caller's stations.
    /// @param meterStop The stop reading billed, in Wh: must equal End's signed reading (rounded down to Wh).
    /// @param records [Begin record (reason B), End record (reason E, L, R, A or P)], or [the record with both].
    struct SignedSettlement {
        uint256 sessionId;
        uint40 meterStop;
        MeterRecord[] records;
    }

    /// @notice `driver` opened session `sessionId` at `stationId` with `deposit` under tariff `tariffId`.
    event SessionRequested(
        uint256 indexed sessionId, address indexed driver, uint32 indexed stationId, uint8 connector, uint96 deposit, uint32 tariffId
    );
    /// @notice The operator started session `sessionId` as OCPP transaction `transactionId`.
    event SessionStarted(uint256 indexed sessionId, uint32 transactionId, uint40 meterStart, uint40 startedAt);
    /// @notice The driver asked to stop session `sessionId`.
    event StopRequested(uint256 indexed sessionId, uint32 indexed stationId);
    /// @notice The invoice record, written once per session. The connector is in SessionRequested and the
    ///         OCPP transaction id in SessionStarted.
    event SessionSettled(
        uint256 indexed sessionId,
        address indexed driver,
        address indexed operator,
        uint32 stationId,
        uint32 tariffId,
        uint40 meterStart,
        uint40 meterStop,
        uint40 startedAt,
        uint40 endedAt,
        uint96 cost,
        uint96 refund,
        address payout
    );
    /// @notice Session `sessionId` was cancelled and `refund` (its whole deposit) returned.
    event SessionCancelled(uint256 indexed sessionId, address indexed driver, uint96 refund, CancelReason reason);
    /// @notice The driver reclaimed the whole deposit of session `sessionId`, which was never settled.
    event SessionExpired(uint256 indexed sessionId, address indexed driver, uint96 refund);
    /// @notice The station's operator `operator` refunded the whole deposit of started session `sessionId` to its
    ///         driver (for a payment mandate's session: the payer) and took nothing.
    event SessionRefunded(uint256 indexed sessionId, address indexed driver, address indexed operator, uint96 refund);

    /// @notice A session needs a deposit.
    error ZeroDeposit();
    /// @notice Station `stationId` takes no new sessions.
    error StationInactive(uint32 stationId);
    /// @notice Station `stationId` has no connector `connector`.
    error InvalidConnector(uint32 stationId, uint8 connector);
    /// @notice Session `sessionId` is in `state`, not the state the call needs.
    error InvalidState(uint256 sessionId, SessionState state);
    /// @notice `account` is not the driver of session `sessionId`.
    error NotDriver(uint256 sessionId, address account);
    /// @notice The call on session `sessionId` is allowed from `allowedAt` (unix seconds) on.
    error TooEarly(uint256 sessionId, uint256 allowedAt);
    /// @notice Every lane of `driver` holds an open session (or has used all its sequence numbers).
    error NoFreeLane(address driver);
    /// @notice A batch's arrays have different lengths: `expected` and `actual`.
    error LengthMismatch(uint256 expected, uint256 actual);
    /// @notice Start timeout and longest duration must not be zero.
    error InvalidTimeouts(uint32 startTimeout, uint32 maxDuration);
    /// @notice Station `stationId` had a meter key when the session started: it settles only with signed records
    ///         (settleSigned).
    error MeterSignatureRequired(uint32 stationId);
    /// @notice Station `stationId` had no meter key when the session started: it settles with settle.
    error NoMeterKey(uint32 stationId);
    /// @notice The billed stop reading `billed` is not End's signed reading `signed` (Wh).
    error ReadingMismatch(uint256 sessionId, uint40 signed, uint40 billed);
    /// @notice End time `endedAt` of session `sessionId` is outside its start `startedAt` to now `latest` (unix
    ///         seconds).
    error EndTimeOutOfRange(uint256 sessionId, uint32 endedAt, uint32 startedAt, uint32 latest);

    /// @notice Open a session: lock `deposit` tokens (approved beforehand) for a charge at `stationId`.
    ///         The station's current tariff is snapshotted: its price cannot change under the session.
    ///         The session takes the caller's first lane without an open session.
    /// @param stationId Station to charge at (must be active).
    /// @param connector Connector number, 1 to the station's connector count.
    /// @param deposit Most the driver will pay; the unused part is refunded at settlement.
    /// @return sessionId The new session's id.
    function open(uint32 stationId, uint8 connector, uint96 deposit) external returns (uint256 sessionId);

    /// @notice Open a session with an EIP-2612 permit instead of a prior approval, in one transaction.
    ///         A permit for more than the deposit leaves a standing allowance, so the driver's later
    ///         sessions open with `open` (no permit to verify or allowance to write: about 50,000 gas
    ///         less). The escrow only ever pulls tokens from the caller of open, for the caller's own
    ///         deposit, so no one else can use that allowance.
    /// @dev A permit that fails (e.g. already used by a front-runner) is ignored; the transfer then
    ///      needs an existing allowance.
    /// @param stationId Station to charge at (must be active).
    /// @param connector Connector number, 1 to the station's connector count.
    /// @param deposit Most the driver will pay; the unused part is refunded at settlement.
    /// @param allowance The permit's value: at least the deposit.
    /// @param deadline Permit deadline (unix seconds).
    /// @param v Permit signature v.
    /// @param r Permit signature r.
    /// @param s Permit signature s.
    /// @return sessionId The new session's id.
    function openWithPermit(
        uint32 stationId,
        uint8 connector,
        uint96 deposit,
        uint256 allowance,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (uint256 sessionId);

    /// @notice Open a session for `payer` that `operator`'s charge point already started (a card or roaming
    ///         token): the session is Active at once, its deposit pulled from the payer (who approved the
    ///         escrow), its refund returned to the payer, its id in the payer's lanes. Only MANDATES_ROLE: the
    ///         payment mandates contract, which checks the payer's mandate (named operator, caps, expiry)
    ///         first. Emits SessionRequested and SessionStarted, as open and start do.
    /// @param payer Whose tokens pay (the session's driver).
    /// @param operator The operator that asked; must operate the station.
    /// @param stationId Station (must be active).
    /// @param connector Connector number, 1 to the station's connector count.
    /// @param deposit Most the session can cost.
    /// @param transactionId The OCPP transaction id the Core Client gave the charge point.
    /// @param meterStart Meter reading at start, in Wh.
    /// @return sessionId The new session's id.
    function openActiveSession(
        address payer,
        address operator,
        uint32 stationId,
        uint8 connector,
        uint96 deposit,
        uint32 transactionId,
        uint40 meterStart
    ) external returns (uint256 sessionId);

    /// @notice Ask the operator to stop a running session. Only an event: the Core Client sends
    ///         RemoteStopTransaction and settles when the charge point reports the stop.
    /// @param sessionId An Active session of the caller.
    function requestStop(uint256 sessionId) external;

    /// @notice Cancel a session that the operator neither started nor rejected within startTimeout.
    ///         Refunds the whole deposit.
    /// @param sessionId A Requested session of the caller.
    function cancel(uint256 sessionId) external;

    /// @notice Take back the whole deposit of a session the operator never settled, once maxDuration
    ///         plus reclaimGrace have passed since it started.
    /// @param sessionId An Active session of the caller.
    function reclaim(uint256 sessionId) external;

    /// @notice Mark a session started: the charge point began the OCPP transaction.
    /// @param sessionId A Requested session at one of the caller's stations.
    /// @param transactionId The OCPP transaction id the Core Client gave the charge point.
    /// @param meterStart Meter reading at start, in Wh.
    function start(uint256 sessionId, uint32 transactionId, uint40 meterStart) external;

    /// @notice Start many sessions of the caller's stations in one transaction. All or nothing: one
    ///         session that cannot start reverts the batch.
    /// @param sessionIds Requested sessions at the caller's stations.
    /// @param transactionIds The OCPP transaction id of each session.
    /// @param meterStarts Meter reading at start of each session, in Wh.
    function startBatch(uint256[] calldata sessionIds, uint32[] calldata transactionIds, uint40[] calldata meterStarts)
        external;

    /// @notice Refuse a session that cannot start (station offline, connector busy, charger rejected).
    ///         Refunds the whole deposit at once.
    /// @param sessionId A Requested session at one of the caller's stations.
    /// @param reason Why (recorded in SessionCancelled).
    function reject(uint256 sessionId, CancelReason reason) external;

    /// @notice Refund a started session in full and take nothing: the operator's decision on a session whose
    ///         stop cannot be trusted (the Core Client's held sessions). The whole deposit goes back to the driver
    ///         (for a payment mandate's session: the payer); the session ends Cancelled.
    /// @param sessionId An Active session at one of the caller's stations.
    function refundActive(uint256 sessionId) external;

    /// @notice Settle a session: cost = session fee + energy x price (+ time fee from the start until now),
    ///         capped at the deposit, paid to the operator's payout address; the rest is refunded to the driver.
    /// @param sessionId An Active session at one of the caller's stations.
    /// @param meterStop Meter reading at stop, in Wh (not below the start reading).
    function settle(uint256 sessionId, uint40 meterStop) external;

    /// @notice Settle a session that ended at `endedAt`, as a CSMS's charge detail record says: as settle, with
    ///         the time fee counted from the start until `endedAt`, which SessionSettled records as the end. The
    ///         end lies between the start on chain and now: an operator can bill less time than the chain saw,
    ///         never more.
    /// @param sessionId An Active session at one of the caller's stations.
    /// @param meterStop Meter reading at stop, in Wh (not below the start reading).
    /// @param endedAt When the session ended (unix seconds): from its start on chain to now.
    function settleAt(uint256 sessionId, uint40 meterStop, uint32 endedAt) external;

    /// @notice Settle many sessions of the caller's stations in one transaction, with one payout
    ///         transfer for their summed cost. All or nothing: one invalid session reverts the batch.
    /// @param sessionIds Active sessions at the caller's stations.
    /// @param meterStops Meter reading at stop for each session, in Wh.
    function settleBatch(uint256[] calldata sessionIds, uint40[] calldata meterStops) external;

    /// @notice settleAt for many sessions of the caller's stations in one transaction, with one payout transfer.
    ///         All or nothing: one invalid session or end time reverts the batch.
    /// @param sessionIds Active sessions at the caller's stations.
    /// @param meterStops Meter reading at stop for each session, in Wh.
    /// @param endedAts When each session ended (unix seconds): from its start on chain to now.
    function settleBatchAt(uint256[] calldata sessionIds, uint40[] calldata meterStops, uint32[] calldata endedAts)
        external;

    /// @notice Settle a session of a station with a meter key ("no proof, no pay"): the meter verifier checks the
    ///         records against the key the station had when the session started (P-256, SHA-256; a key rotated
    ///         since does not strand the session), that they name the session (signed ID = the session's idTag),
    ///         come from one meter (same MS), in order (End's pagination after Begin's; in one record, End's
    ///         reading after Begin's), and the escrow bills the energy between their signed readings. Cost and
    ///         payout as settle; the event carries the signed readings as meterStart and meterStop. Without
    ///         valid records the session cannot be settled: after maxDuration + reclaimGrace the driver
    ///         reclaims the whole deposit.
    /// @param settlement The session, the billed stop reading and its signed records.
    function settleSigned(SignedSettlement calldata settlement) external;

    /// @notice settleSigned for a session that ended at `endedAt`, as a CSMS's charge detail record says: the
    ///         time fee counts from the start until `endedAt` (between the start on chain and now), as settleAt.
    /// @param settlement The session, the billed stop reading and its signed records.
    /// @param endedAt When the session ended (unix seconds): from its start on chain to now.
    function settleSignedAt(SignedSettlement calldata settlement, uint32 endedAt) external;

    /// @notice Settle many sessions of the caller's metered stations with their signed records, with one
    ///         payout transfer. All or nothing: one invalid session reverts the batch.
    /// @param settlements One per session.
    function settleSignedBatch(SignedSettlement[] calldata settlements) external;

    /// @notice The token deposits are paid in.
    function token() external view returns (IERC20);

    /// @notice The stateless contract that checks signed meter records for settleSigned.
    function signatureVerifier() external view returns (IMeterVerifier);

    /// @notice The OCPP idTag naming session `sessionId` (`EV` + 18 hex digits): the identification its
    ///         signed records must carry.
    /// @param sessionId The session.
    function sessionIdTag(uint256 sessionId) external pure returns (bytes20);

    /// @notice Session `sessionId`: state None if it does not exist, Closed if its lane moved on.
    /// @param sessionId The session.
    function getSession(uint256 sessionId) external view returns (SessionInfo memory info);

    /// @notice What settling `sessionId` now with `meterStop` would charge (capped at the deposit).
    /// @param sessionId An Active session.
    /// @param meterStop Meter reading at stop, in Wh.
    function settlementCost(uint256 sessionId, uint40 meterStop) external view returns (uint256 cost);
}
