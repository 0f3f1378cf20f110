// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Time} from "@openzeppelin/contracts/utils/types/Time.sol";
import {IMeterVerifier} from "./interfaces/IMeterVerifier.sol";
import {ISessionEscrow} from "./interfaces/ISessionEscrow.sol";
import {StationRegistry} from "./StationRegistry.sol";
import {SessionIds} from "./utils/SessionIds.sol";

/// @title Session escrow
/// @notice Pre-paid charging sessions settled one by one, in real time. A driver opens a session with a
///         deposit; the station's operator starts it when the charge point starts the transaction and
///         settles it with the final meter reading: the cost goes to the operator's payout address and
///         the remainder back to the driver, in the same transaction. Every deposit ends settled,
///         cancelled or reclaimed: no path leaves tokens in the escrow.
///
///         Requested --start(operator)--> Active --settle | settleAt(operator)--> Settled
///         Requested --reject(operator) | cancel(driver, after startTimeout)--> Cancelled (full refund)
///         Active --refundActive(operator)--> Cancelled (full refund)
///         Active --reclaim(driver, after maxDuration + reclaimGrace, never settled)--> Expired (full refund)
///
///         Session ids: every driver has LANES lanes, each holding one session at a time, so a driver can
///         have up to LANES sessions open at once. sessionId = driver << 96 | lane << 16 | seq, where seq
///         counts the sessions of the lane (from 1). Written in hex, an id is the driver's address followed
///         by the lane and the sequence number.
/// @dev Gas: a session is one storage slot, and a lane's slot is reused by its next session, so a
///      returning driver's open overwrites a non-zero slot (5,000 gas) instead of filling a fresh one
///      (22,100). Storage keeps only each lane's latest session; an earlier one reads as Closed, and its
///      events are its record. Works with any ERC-20 through SafeERC20; permit is optional.
contract SessionEscrow is ISessionEscrow, StationRegistry {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    /// @notice A lane's latest session, packed in one storage slot. Energy in Wh, times in unix seconds.
    /// @dev `since` is when the session entered its state: opened, started or ended.
    struct Session {
        uint96 deposit;
        uint32 stationId;
        uint32 tariffId;
        SessionState state;
        uint32 since;
        uint40 meterStart;
        uint16 seq;
    }

    /// @notice Lanes per driver: the most sessions one driver can have open at once.
    uint256 public constant LANES = 256;
    /// @notice Role of the payment mandates contract: opens started sessions for payers (openActiveSession).
    bytes32 internal constant MANDATES_ROLE = keccak256("MANDATES_ROLE");

    /// @inheritdoc ISessionEscrow
    IERC20 public immutable token;
    /// @notice Seconds after open from which the driver may cancel a session that has not started.
    uint32 public immutable startTimeout;
    /// @notice Longest billable charging time, in seconds; the time fee stops counting after it.
    uint32 public immutable maxDuration;
    /// @notice Seconds after maxDuration from which the driver may reclaim a session never settled.
    uint32 public immutable reclaimGrace;
    /// @inheritdoc ISessionEscrow
    IMeterVerifier public immutable signatureVerifier;

    mapping(address driver => Session[LANES]) private _lanes;

    /// @param token_ Deposit token (any ERC-20).
    /// @param startTimeout_ Seconds before a driver may cancel an unstarted session.
    /// @param maxDuration_ Longest billable session, in seconds.
    /// @param reclaimGrace_ Seconds after maxDuration before a driver may reclaim an unsettled session.
    /// @param admin Receives DEFAULT_ADMIN_ROLE and REGISTRAR_ROLE.
    /// @param signatureVerifier_ The stateless checker of signed meter records (OCMFVerifier).
    constructor(
        IERC20 token_,
        uint32 startTimeout_,
        uint32 maxDuration_,
        uint32 reclaimGrace_,
        address admin,
        IMeterVerifier signatureVerifier_
    ) StationRegistry(admin) {
        if (address(token_) == address(0) || address(signatureVerifier_) == address(0)) revert ZeroAddress();
        if (startTimeout_ == 0 || maxDuration_ == 0) revert InvalidTimeouts(startTimeout_, maxDuration_);
        token = token_;
        startTimeout = startTimeout_;
        maxDuration = maxDuration_;
        reclaimGrace = reclaimGrace_;
        signatureVerifier = signatureVerifier_;
    }

    // ----------------------------------------------------------------- driver

    /// @inheritdoc ISessionEscrow
    function open(uint32 stationId, uint8 connector, uint96 deposit) external returns (uint256 sessionId) {
        return _open(stationId, connector, deposit);
    }

    /// @inheritdoc ISessionEscrow
    function openWithPermit(
        uint32 stationId,
        uint8 connector,
        uint96 deposit,
        uint256 allowance,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (uint256 sessionId) {
        try IERC20Permit(address(token)).permit(msg.sender, address(this), allowance, deadline, v, r, s) {} catch {}
        return _open(stationId, connector, deposit);
    }

    /// @inheritdoc ISessionEscrow
    function requestStop(uint256 sessionId) external {
        Session storage s = _sessionOfCaller(sessionId, SessionState.Active);
        emit StopRequested(sessionId, s.stationId);
    }

    /// @inheritdoc ISessionEscrow
    function cancel(uint256 sessionId) external {
        Session storage s = _sessionOfCaller(sessionId, SessionState.Requested);
        uint256 allowedAt = uint256(s.since) + startTimeout;
        if (Time.timestamp() < allowedAt) revert TooEarly(sessionId, allowedAt);
        _cancel(sessionId, s, CancelReason.DriverCancelled);
    }

    /// @inheritdoc ISessionEscrow
    function reclaim(uint256 sessionId) external {
        Session storage s = _sessionOfCaller(sessionId, SessionState.Active);
        uint256 allowedAt = uint256(s.since) + maxDuration + reclaimGrace;
        if (Time.timestamp() < allowedAt) revert TooEarly(sessionId, allowedAt);
        uint96 deposit = _end(s, SessionState.Expired);
        emit SessionExpired(sessionId, msg.sender, deposit);
        token.safeTransfer(msg.sender, deposit);
    }

    // ---------------------------------------------------------------- mandates

    /// @inheritdoc ISessionEscrow
    function openActiveSession(
        address payer,
        address operator,
        uint32 stationId,
        uint8 connector,
        uint96 deposit,
        uint32 transactionId,
        uint40 meterStart
    ) external onlyRole(MANDATES_ROLE) returns (uint256 sessionId) {
        (address stationOperator, uint32 tariffId) = _openable(stationId, connector, deposit);
        if (stationOperator != operator) revert NotStationOperator(stationId, operator);
        (uint256 lane, uint16 seq) = _freeLane(payer);
        sessionId = SessionIds.pack(payer, lane, seq);
        uint32 now_ = _now();
        _lanes[payer][lane] = Session(deposit, stationId, tariffId, SessionState.Active, now_, meterStart, seq);
        emit SessionRequested(sessionId, payer, stationId, connector, deposit, tariffId);
        emit SessionStarted(sessionId, transactionId, meterStart, now_);
        token.safeTransferFrom(payer, address(this), deposit);
    }

    // --------------------------------------------------------------- operator

    /// @inheritdoc ISessionEscrow
    function start(uint256 sessionId, uint32 transactionId, uint40 meterStart) external {
        _start(sessionId, transactionId, meterStart);
    }

    /// @inheritdoc ISessionEscrow
    function startBatch(uint256[] calldata sessionIds, uint32[] calldata transactionIds, uint40[] calldata meterStarts)
        external
    {
        if (transactionIds.length != sessionIds.length) revert LengthMismatch(sessionIds.length, transactionIds.length);
        if (meterStarts.length != sessionIds.length) revert LengthMismatch(sessionIds.length, meterStarts.length);
        for (uint256 i; i < sessionIds.length; ++i) {
            _start(sessionIds[i], transactionIds[i], meterStarts[i]);
        }
    }

    /// @inheritdoc ISessionEscrow
    function reject(uint256 sessionId, CancelReason reason) external {
        (Session storage s,) = _session(sessionId, SessionState.Requested);
        _checkStationOperator(s.stationId);
        _cancel(sessionId, s, reason);
    }

    /// @inheritdoc ISessionEscrow
    function refundActive(uint256 sessionId) external {
        (Session storage s, address driver) = _session(sessionId, SessionState.Active);
        _checkStationOperator(s.stationId);
        uint96 deposit = _end(s, SessionState.Cancelled);
        emit SessionRefunded(sessionId, driver, msg.sender, deposit);
        token.safeTransfer(driver, deposit);
    }

    /// @inheritdoc ISessionEscrow
    function settle(uint256 sessionId, uint40 meterStop) external {
        address payout = _payoutOf(msg.sender);
        uint256 cost = _settle(sessionId, meterStop, _now(), payout);
        if (cost != 0) token.safeTransfer(payout, cost);
    }

    /// @inheritdoc ISessionEscrow
    function settleAt(uint256 sessionId, uint40 meterStop, uint32 endedAt) external {
        address payout = _payoutOf(msg.sender);
        _checkEndedAt(sessionId, endedAt);
        uint256 cost = _settle(sessionId, meterStop, endedAt, payout);
        if (cost != 0) token.safeTransfer(payout, cost);
    }

    /// @inheritdoc ISessionEscrow
    function settleBatch(uint256[] calldata sessionIds, uint40[] calldata meterStops) external {
        if (meterStops.length != sessionIds.length) revert LengthMismatch(sessionIds.length, meterStops.length);
        address payout = _payoutOf(msg.sender);
        uint32 now_ = _now();
        uint256 total;
        for (uint256 i; i < sessionIds.length; ++i) {
            total += _settle(sessionIds[i], meterStops[i], now_, payout);
        }
        if (total != 0) token.safeTransfer(payout, total);
    }

    /// @inheritdoc ISessionEscrow
    function settleBatchAt(uint256[] calldata sessionIds, uint40[] calldata meterStops, uint32[] calldata endedAts)
        external
    {
        if (meterStops.length != sessionIds.length) revert LengthMismatch(sessionIds.length, meterStops.length);
        if (endedAts.length != sessionIds.length) revert LengthMismatch(sessionIds.length, endedAts.length);
        address payout = _payoutOf(msg.sender);
        uint256 total;
        for (uint256 i; i < sessionIds.length; ++i) {
            _checkEndedAt(sessionIds[i], endedAts[i]);
            total += _settle(sessionIds[i], meterStops[i], endedAts[i], payout);
        }
        if (total != 0) token.safeTransfer(payout, total);
    }

    /// @inheritdoc ISessionEscrow
    function settleSigned(SignedSettlement calldata settlement) external {
        address payout = _payoutOf(msg.sender);
        uint256 cost = _settleSigned(settlement, _now(), payout);
        if (cost != 0) token.safeTransfer(payout, cost);
    }

    /// @inheritdoc ISessionEscrow
    function settleSignedAt(SignedSettlement calldata settlement, uint32 endedAt) external {
        address payout = _payoutOf(msg.sender);
        _checkEndedAt(settlement.sessionId, endedAt);
        uint256 cost = _settleSigned(settlement, endedAt, payout);
        if (cost != 0) token.safeTransfer(payout, cost);
    }

    /// @inheritdoc ISessionEscrow
    function settleSignedBatch(SignedSettlement[] calldata settlements) external {
        address payout = _payoutOf(msg.sender);
        uint32 now_ = _now();
        uint256 total;
        for (uint256 i; i < settlements.length; ++i) {
            total += _settleSigned(settlements[i], now_, payout);
        }
        if (total != 0) token.safeTransfer(payout, total);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc ISessionEscrow
    function sessionIdTag(uint256 sessionId) external pure returns (bytes20) {
        return SessionIds.idTag(sessionId);
    }

    /// @inheritdoc ISessionEscrow
    function getSession(uint256 sessionId) external view returns (SessionInfo memory info) {
        (Session storage s, address driver, SessionState state) = _load(sessionId);
        info.state = state;
        if (state == SessionState.None) return info;
        (, info.lane, info.seq,) = SessionIds.unpack(sessionId);
        info.driver = driver;
        if (state == SessionState.Closed) return info;
        (info.deposit, info.stationId, info.tariffId) = (s.deposit, s.stationId, s.tariffId);
        (info.since, info.meterStart) = (s.since, s.meterStart);
    }

    /// @inheritdoc ISessionEscrow
    function settlementCost(uint256 sessionId, uint40 meterStop) external view returns (uint256 cost) {
        (Session storage s,) = _session(sessionId, SessionState.Active);
        (cost,) = _cost(sessionId, s, s.meterStart, meterStop, _now());
    }

    // --------------------------------------------------------------- internal

    function _open(uint32 stationId, uint8 connector, uint96 deposit) private returns (uint256 sessionId) {
        if (deposit == 0) revert ZeroDeposit();
        Station storage station = _station(stationId);
        (address operator, uint32 tariffId, uint8 connectors, bool active) =
            (station.operator, station.tariffId, station.connectors, station.active);
        if (operator == address(0)) revert UnknownStation(stationId);
        if (!active) revert StationInactive(stationId);
        if (connector == 0 || connector > connectors) revert InvalidConnector(stationId, connector);

        (uint256 lane, uint16 seq) = _freeLane(msg.sender);
        sessionId = SessionIds.pack(msg.sender, lane, seq);
        _lanes[msg.sender][lane] =
            Session(deposit, stationId, tariffId, SessionState.Requested, _now(), 0, seq);
        emit SessionRequested(sessionId, msg.sender, stationId, connector, deposit, tariffId);
        token.safeTransferFrom(msg.sender, address(this), deposit);
    }

    /// @dev The operator and current tariff of `stationId`, after checking that it takes a session of
    ///      `deposit` at `connector`.
    function _openable(uint32 stationId, uint8 connector, uint96 deposit)
        private
        view
        returns (address operator, uint32 tariffId)
    {
        if (deposit == 0) revert ZeroDeposit();
        Station storage station = _station(stationId);
        uint8 connectors;
        bool active;
        (operator, tariffId, connectors, active) = (station.operator, station.tariffId, station.connectors, station.active);
        if (operator == address(0)) revert UnknownStation(stationId);
        if (!active) revert StationInactive(stationId);
        if (connector == 0 || connector > connectors) revert InvalidConnector(stationId, connector);
    }

    /// @dev The first lane of `driver` that holds no open session and has sequence numbers left, and the
    ///      sequence number of its next session.
    function _freeLane(address driver) private view returns (uint256 lane, uint16 seq) {
        Session[LANES] storage lanes = _lanes[driver];
        for (; lane < LANES; ++lane) {
            Session storage s = lanes[lane];
            (SessionState state, uint16 current) = (s.state, s.seq);
            if (state != SessionState.Requested && state != SessionState.Active && current != type(uint16).max) {
                return (lane, current + 1);
            }
        }
        revert NoFreeLane(driver);
    }

    function _start(uint256 sessionId, uint32 transactionId, uint40 meterStart) private {
        (Session storage s,) = _session(sessionId, SessionState.Requested);
        _checkStationOperator(s.stationId);
        s.state = SessionState.Active;
        uint32 now_ = _now();
        s.since = now_;
        s.meterStart = meterStart;
        emit SessionStarted(sessionId, transactionId, meterStart, now_);
    }

    /// @dev Reverts unless `endedAt` lies between the start of Active session `sessionId` and now: an operator
    ///      can bill a session for less time than the chain saw, never for more.
    function _checkEndedAt(uint256 sessionId, uint32 endedAt) private view {
        (Session storage s,) = _session(sessionId, SessionState.Active);
        uint32 startedAt = s.since;
        uint32 now_ = _now();
        if (endedAt < startedAt || endedAt > now_) revert EndTimeOutOfRange(sessionId, endedAt, startedAt, now_);
    }

    function _settle(uint256 sessionId, uint40 meterStop, uint32 endedAt, address payout) private returns (uint256) {
        (Session storage s,) = _session(sessionId, SessionState.Active);
        Session memory m = s;
        (bool metered, uint32 meterKeySince) = _operatedStationMeter(m.stationId);
        // the key changed since the start (rare): whether the station had one when the session started
        if (meterKeySince > m.since) {
            (bytes32 qx, bytes32 qy) = _meterPublicKeyAtTime(m.stationId, m.since);
            metered = qx | qy != 0;
        }
        if (metered) revert MeterSignatureRequired(m.stationId);
        return _close(sessionId, s, m, m.meterStart, meterStop, endedAt, payout);
    }

    function _settleSigned(SignedSettlement calldata x, uint32 endedAt, address payout) private returns (uint256) {
        (Session storage s,) = _session(x.sessionId, SessionState.Active);
        Session memory m = s;
        _checkStationOperator(m.stationId);
        (bytes32 qx, bytes32 qy) = _meterPublicKeyAtTime(m.stationId, m.since); // the key of the session's start
        if (qx | qy == 0) revert NoMeterKey(m.stationId);
        (uint40 meterStart, uint40 meterStop) = _readings(x, qx, qy);
        if (x.meterStop != meterStop) revert ReadingMismatch(x.sessionId, meterStop, x.meterStop);
        return _close(x.sessionId, s, m, meterStart, meterStop, endedAt, payout);
    }

    /// @dev signatureVerifier.readings(x.sessionId, qx, qy, x.records), the records passed on as they lie in this
    ///      call's calldata (their ABI encoding is relative to its start, so it is copied, not decoded and encoded
    ///      again): from their length word to the furthest end of a record or its payload. The verifier decodes
    ///      and checks them; a revert of it is passed on as it is.
    function _readings(SignedSettlement calldata x, bytes32 qx, bytes32 qy)
        private
        view
        returns (uint40 meterStart, uint40 meterStop)
    {
        MeterRecord[] calldata records = x.records;
        (uint256 sessionId, address verifier) = (x.sessionId, address(signatureVerifier));
        bytes4 selector = IMeterVerifier.readings.selector;
        assembly ("memory-safe") {
            let start := sub(records.offset, 0x20)
            let end := add(records.offset, shl(5, records.length))
            for { let i := 0 } lt(i, records.length) { i := add(i, 1) } {
                let record := add(records.offset, calldataload(add(records.offset, shl(5, i))))
                let payload := add(record, calldataload(record))
                let payloadEnd := add(add(payload, 0x20), calldataload(payload))
                if gt(add(record, 0x80), end) { end := add(record, 0x80) }
                if gt(payloadEnd, end) { end := payloadEnd }
            }
            if gt(end, calldatasize()) { end := calldatasize() }
            let ptr := mload(0x40)
            mstore(ptr, selector)
            mstore(add(ptr, 0x04), sessionId)
            mstore(add(ptr, 0x24), qx)
            mstore(add(ptr, 0x44), qy)
            mstore(add(ptr, 0x64), 0x80)
            calldatacopy(add(ptr, 0x84), start, sub(end, start))
            if iszero(staticcall(gas(), verifier, ptr, add(0x84, sub(end, start)), 0x00, 0x40)) {
                returndatacopy(ptr, 0, returndatasize())
                revert(ptr, returndatasize())
            }
            if lt(returndatasize(), 0x40) { revert(0, 0) }
            meterStart := mload(0x00)
            meterStop := mload(0x20)
            if or(shr(40, meterStart), shr(40, meterStop)) { revert(0, 0) }
        }
    }

    /// @dev Settles `s` (loaded as `m`) on the readings given, billing the time until `endedAt` (checked by the
    ///      caller): effects, the invoice event and the driver's refund; returns the cost, which the caller pays out.
    function _close(
        uint256 sessionId,
        Session storage s,
        Session memory m,
        uint40 meterStart,
        uint40 meterStop,
        uint32 endedAt,
        address payout
    ) private returns (uint256) {
        address driver = SessionIds.driverOf(sessionId);
        (uint96 cost, uint96 driverRefund) = _cost(sessionId, m, meterStart, meterStop, endedAt);
        s.state = SessionState.Settled;
        s.since = endedAt;
        emit SessionSettled(
            sessionId,
            driver,
            msg.sender,
            m.stationId,
            m.tariffId,
            meterStart,
            meterStop,
            m.since,
            endedAt,
            cost,
            driverRefund,
            payout
        );
        if (driverRefund != 0) token.safeTransfer(driver, driverRefund);
        return cost;
    }

    /// @dev Cost and refund of settling `s` ended at `endedAt` on the readings `meterStart` and `meterStop`.
    function _cost(uint256 sessionId, Session memory s, uint40 meterStart, uint40 meterStop, uint32 endedAt)
        private
        view
        returns (uint96 cost, uint96 driverRefund)
    {
        if (meterStop < meterStart) revert MeterBelowStart(sessionId, meterStart, meterStop);
        uint256 duration = endedAt - s.since;
        if (duration > maxDuration) duration = maxDuration;
        uint256 price = _price(s.tariffId, meterStop - meterStart, duration);
        cost = price < s.deposit ? uint96(price) : s.deposit;
        driverRefund = s.deposit - cost;
    }

    function _cancel(uint256 sessionId, Session storage s, CancelReason reason) private {
        address driver = SessionIds.driverOf(sessionId);
        uint96 deposit = _end(s, SessionState.Cancelled);
        emit SessionCancelled(sessionId, driver, deposit, reason);
        token.safeTransfer(driver, deposit);
    }

    /// @dev Moves `s` to its final state; returns its deposit.
    function _end(Session storage s, SessionState state) private returns (uint96 deposit) {
        s.state = state;
        s.since = _now();
        return s.deposit;
    }

    /// @dev The block's timestamp as a session stores it (SafeCast: reverts after year 2106).
    function _now() private view returns (uint32) {
        return block.timestamp.toUint32();
    }

    /// @dev The lane slot of `sessionId`, its driver and its state (Closed once the lane holds a later session).
    function _load(uint256 sessionId) private view returns (Session storage s, address driver, SessionState state) {
        uint8 lane;
        uint16 seq;
        bool wellFormed;
        (driver, lane, seq, wellFormed) = SessionIds.unpack(sessionId);
        s = _lanes[driver][lane];
        uint16 current = s.seq;
        if (seq == 0 || seq > current || !wellFormed) state = SessionState.None;
        else if (seq < current) state = SessionState.Closed;
        else state = s.state;
    }

    function _session(uint256 sessionId, SessionState expected) private view returns (Session storage s, address driver) {
        SessionState state;
        (s, driver, state) = _load(sessionId);
        if (state != expected) revert InvalidState(sessionId, state);
    }

    function _sessionOfCaller(uint256 sessionId, SessionState expected) private view returns (Session storage s) {
        address driver;
        (s, driver) = _session(sessionId, expected);
        if (driver != msg.sender) revert NotDriver(sessionId, msg.sender);
    }
}
