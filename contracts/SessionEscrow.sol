// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {StationRegistry} from "./StationRegistry.sol";

/// @title Session escrow
/// @notice Pre-paid charging sessions settled one by one, in real time. A driver opens a session with a
///         deposit; the station's operator starts it when the charge point starts the transaction and
///         settles it with the final meter reading: the cost goes to the operator's payout address and
///         the remainder back to the driver, in the same transaction. Every deposit ends settled,
///         cancelled or reclaimed: no path leaves tokens in the escrow.
///
///         Requested --start(operator)--> Active --settle(operator)--> Settled
///         Requested --reject(operator) | cancel(driver, after startTimeout)--> Cancelled (full refund)
///         Active --reclaim(driver, after maxDuration + reclaimGrace, never settled)--> Expired (full refund)
/// @dev Works with any ERC-20 through SafeERC20; permit is optional (openWithPermit).
contract SessionEscrow is StationRegistry {
    using SafeERC20 for IERC20;

    enum SessionState {
        None,
        Requested,
        Active,
        Settled,
        Cancelled,
        Expired
    }

    /// @notice Why a session was cancelled.
    enum CancelReason {
        DriverCancelled,
        StationOffline,
        ConnectorBusy,
        ChargerRejected,
        Other
    }

    /// @notice A session, packed in two storage slots. Energy in Wh, times in unix seconds.
    struct Session {
        address driver;
        uint96 deposit;
        uint32 stationId;
        uint8 connector;
        SessionState state;
        uint32 tariffId;
        uint40 openedAt;
        uint40 startedAt;
        uint40 meterStart;
        uint32 transactionId;
    }

    /// @notice The token deposits are paid in.
    IERC20 public immutable token;
    /// @notice Seconds after open from which the driver may cancel a session that has not started.
    uint32 public immutable startTimeout;
    /// @notice Longest billable charging time, in seconds; the time fee stops counting after it.
    uint32 public immutable maxDuration;
    /// @notice Seconds after maxDuration from which the driver may reclaim a session never settled.
    uint32 public immutable reclaimGrace;
    /// @notice Number of sessions ever opened; session ids run from 1 to sessionCount.
    uint256 public sessionCount;

    mapping(uint256 sessionId => Session) private _sessions;

    event SessionRequested(
        uint256 indexed sessionId, address indexed driver, uint32 indexed stationId, uint8 connector, uint96 deposit, uint32 tariffId
    );
    event SessionStarted(uint256 indexed sessionId, uint32 indexed stationId, uint32 transactionId, uint40 meterStart, uint40 startedAt);
    event StopRequested(uint256 indexed sessionId, uint32 indexed stationId);
    /// @notice The invoice record: everything an invoice needs, written once per session.
    event SessionSettled(
        uint256 indexed sessionId,
        address indexed driver,
        address indexed operator,
        uint32 stationId,
        uint8 connector,
        uint32 tariffId,
        uint32 transactionId,
        uint40 meterStart,
        uint40 meterStop,
        uint40 startedAt,
        uint40 endedAt,
        uint96 cost,
        uint96 refund,
        address payout
    );
    event SessionCancelled(uint256 indexed sessionId, address indexed driver, uint96 refund, CancelReason reason);
    event SessionExpired(uint256 indexed sessionId, address indexed driver, uint96 refund);

    error ZeroDeposit();
    error StationInactive(uint32 stationId);
    error InvalidConnector(uint32 stationId, uint8 connector);
    error InvalidState(uint256 sessionId, SessionState state);
    error NotDriver(uint256 sessionId, address account);
    error TooEarly(uint256 sessionId, uint256 allowedAt);
    error MeterBelowStart(uint256 sessionId, uint40 meterStart, uint40 meterStop);
    error LengthMismatch();
    error InvalidTimeouts();

    /// @param token_ Deposit token (any ERC-20).
    /// @param startTimeout_ Seconds before a driver may cancel an unstarted session.
    /// @param maxDuration_ Longest billable session, in seconds.
    /// @param reclaimGrace_ Seconds after maxDuration before a driver may reclaim an unsettled session.
    /// @param admin Receives DEFAULT_ADMIN_ROLE and REGISTRAR_ROLE.
    constructor(IERC20 token_, uint32 startTimeout_, uint32 maxDuration_, uint32 reclaimGrace_, address admin)
        StationRegistry(admin)
    {
        if (address(token_) == address(0)) revert ZeroAddress();
        if (startTimeout_ == 0 || maxDuration_ == 0) revert InvalidTimeouts();
        token = token_;
        startTimeout = startTimeout_;
        maxDuration = maxDuration_;
        reclaimGrace = reclaimGrace_;
    }

    // ----------------------------------------------------------------- driver

    /// @notice Open a session: lock `deposit` tokens (approved beforehand) for a charge at `stationId`.
    ///         The station's current tariff is snapshotted: its price cannot change under the session.
    /// @param stationId Station to charge at (must be active).
    /// @param connector Connector number, 1 to the station's connector count.
    /// @param deposit Most the driver will pay; the unused part is refunded at settlement.
    /// @return sessionId The new session's id.
    function open(uint32 stationId, uint8 connector, uint96 deposit) external returns (uint256 sessionId) {
        return _open(stationId, connector, deposit);
    }

    /// @notice Open a session with an EIP-2612 permit instead of a prior approval, in one transaction.
    /// @dev A permit that fails (e.g. already used by a front-runner) is ignored; the transfer then
    ///      needs an existing allowance.
    /// @param stationId Station to charge at (must be active).
    /// @param connector Connector number, 1 to the station's connector count.
    /// @param deposit Most the driver will pay; also the permit's value.
    /// @param deadline Permit deadline (unix seconds).
    /// @param v Permit signature v.
    /// @param r Permit signature r.
    /// @param s Permit signature s.
    /// @return sessionId The new session's id.
    function openWithPermit(uint32 stationId, uint8 connector, uint96 deposit, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        returns (uint256 sessionId)
    {
        try IERC20Permit(address(token)).permit(msg.sender, address(this), deposit, deadline, v, r, s) {} catch {}
        return _open(stationId, connector, deposit);
    }

    /// @notice Ask the operator to stop a running session. Only an event: the Core Client sends
    ///         RemoteStopTransaction and settles when the charge point reports the stop.
    /// @param sessionId An Active session of the caller.
    function requestStop(uint256 sessionId) external {
        Session storage s = _sessions[sessionId];
        _requireState(sessionId, s.state, SessionState.Active);
        if (s.driver != msg.sender) revert NotDriver(sessionId, msg.sender);
        emit StopRequested(sessionId, s.stationId);
    }

    /// @notice Cancel a session that the operator neither started nor rejected within startTimeout.
    ///         Refunds the whole deposit.
    /// @param sessionId A Requested session of the caller.
    function cancel(uint256 sessionId) external {
        Session storage s = _sessions[sessionId];
        _requireState(sessionId, s.state, SessionState.Requested);
        if (s.driver != msg.sender) revert NotDriver(sessionId, msg.sender);
        uint256 allowedAt = uint256(s.openedAt) + startTimeout;
        if (block.timestamp < allowedAt) revert TooEarly(sessionId, allowedAt);
        _cancel(sessionId, s, CancelReason.DriverCancelled);
    }

    /// @notice Take back the whole deposit of a session the operator never settled, once maxDuration
    ///         plus reclaimGrace have passed since it started.
    /// @param sessionId An Active session of the caller.
    function reclaim(uint256 sessionId) external {
        Session storage s = _sessions[sessionId];
        _requireState(sessionId, s.state, SessionState.Active);
        if (s.driver != msg.sender) revert NotDriver(sessionId, msg.sender);
        uint256 allowedAt = uint256(s.startedAt) + maxDuration + reclaimGrace;
        if (block.timestamp < allowedAt) revert TooEarly(sessionId, allowedAt);
        s.state = SessionState.Expired;
        uint96 refund = s.deposit;
        emit SessionExpired(sessionId, s.driver, refund);
        token.safeTransfer(s.driver, refund);
    }

    // --------------------------------------------------------------- operator

    /// @notice Mark a session started: the charge point began the OCPP transaction.
    /// @param sessionId A Requested session at one of the caller's stations.
    /// @param transactionId The OCPP transaction id the Core Client gave the charge point.
    /// @param meterStart Meter reading at start, in Wh.
    function start(uint256 sessionId, uint32 transactionId, uint40 meterStart) external {
        _start(sessionId, transactionId, meterStart);
    }

    /// @notice Start many sessions of the caller's stations in one transaction. All or nothing: one
    ///         session that cannot start reverts the batch.
    /// @param sessionIds Requested sessions at the caller's stations.
    /// @param transactionIds The OCPP transaction id of each session.
    /// @param meterStarts Meter reading at start of each session, in Wh.
    function startBatch(uint256[] calldata sessionIds, uint32[] calldata transactionIds, uint40[] calldata meterStarts)
        external
    {
        if (sessionIds.length != transactionIds.length || sessionIds.length != meterStarts.length) {
            revert LengthMismatch();
        }
        for (uint256 i; i < sessionIds.length; ++i) {
            _start(sessionIds[i], transactionIds[i], meterStarts[i]);
        }
    }

    /// @notice Refuse a session that cannot start (station offline, connector busy, charger rejected).
    ///         Refunds the whole deposit at once.
    /// @param sessionId A Requested session at one of the caller's stations.
    /// @param reason Why (recorded in SessionCancelled).
    function reject(uint256 sessionId, CancelReason reason) external {
        Session storage s = _sessions[sessionId];
        _requireState(sessionId, s.state, SessionState.Requested);
        _checkStationOperator(s.stationId);
        _cancel(sessionId, s, reason);
    }

    /// @notice Settle a session: cost = session fee + energy x price (+ time fee), capped at the deposit,
    ///         paid to the operator's payout address; the rest is refunded to the driver.
    /// @param sessionId An Active session at one of the caller's stations.
    /// @param meterStop Meter reading at stop, in Wh (not below the start reading).
    function settle(uint256 sessionId, uint40 meterStop) external {
        uint256 cost = _settle(sessionId, meterStop);
        if (cost != 0) token.safeTransfer(_payoutOf(msg.sender), cost);
    }

    /// @notice Settle many sessions of the caller's stations in one transaction, with one payout
    ///         transfer for their summed cost. All or nothing: one invalid session reverts the batch.
    /// @param sessionIds Active sessions at the caller's stations.
    /// @param meterStops Meter reading at stop for each session, in Wh.
    function settleBatch(uint256[] calldata sessionIds, uint40[] calldata meterStops) external {
        if (sessionIds.length != meterStops.length) revert LengthMismatch();
        uint256 total;
        for (uint256 i; i < sessionIds.length; ++i) {
            total += _settle(sessionIds[i], meterStops[i]);
        }
        if (total != 0) token.safeTransfer(_payoutOf(msg.sender), total);
    }

    // ------------------------------------------------------------------ views

    /// @notice Session `sessionId` (all fields zero and state None if it does not exist).
    /// @param sessionId The session.
    function getSession(uint256 sessionId) external view returns (Session memory) {
        return _sessions[sessionId];
    }

    /// @notice What settling `sessionId` now with `meterStop` would charge (capped at the deposit).
    /// @param sessionId An Active session.
    /// @param meterStop Meter reading at stop, in Wh.
    function settlementCost(uint256 sessionId, uint40 meterStop) external view returns (uint256 cost) {
        Session memory s = _sessions[sessionId];
        _requireState(sessionId, s.state, SessionState.Active);
        (cost,) = _cost(sessionId, s, meterStop);
    }

    // --------------------------------------------------------------- internal

    function _open(uint32 stationId, uint8 connector, uint96 deposit) private returns (uint256 sessionId) {
        if (deposit == 0) revert ZeroDeposit();
        Station memory station = _stations[stationId];
        if (station.operator == address(0)) revert UnknownStation(stationId);
        if (!station.active) revert StationInactive(stationId);
        if (connector == 0 || connector > station.connectors) revert InvalidConnector(stationId, connector);

        sessionId = ++sessionCount;
        _sessions[sessionId] = Session({
            driver: msg.sender,
            deposit: deposit,
            stationId: stationId,
            connector: connector,
            state: SessionState.Requested,
            tariffId: station.tariffId,
            openedAt: uint40(block.timestamp),
            startedAt: 0,
            meterStart: 0,
            transactionId: 0
        });
        emit SessionRequested(sessionId, msg.sender, stationId, connector, deposit, station.tariffId);
        token.safeTransferFrom(msg.sender, address(this), deposit);
    }

    function _start(uint256 sessionId, uint32 transactionId, uint40 meterStart) private {
        Session storage s = _sessions[sessionId];
        _requireState(sessionId, s.state, SessionState.Requested);
        _checkStationOperator(s.stationId);
        s.state = SessionState.Active;
        s.startedAt = uint40(block.timestamp);
        s.meterStart = meterStart;
        s.transactionId = transactionId;
        emit SessionStarted(sessionId, s.stationId, transactionId, meterStart, uint40(block.timestamp));
    }

    /// @dev Effects and the driver's refund; returns the cost, which the caller pays out.
    function _settle(uint256 sessionId, uint40 meterStop) private returns (uint256) {
        Session storage s = _sessions[sessionId];
        _requireState(sessionId, s.state, SessionState.Active);
        _checkStationOperator(s.stationId);
        (uint96 cost, uint96 refund) = _cost(sessionId, s, meterStop);
        s.state = SessionState.Settled;
        emit SessionSettled(
            sessionId,
            s.driver,
            msg.sender,
            s.stationId,
            s.connector,
            s.tariffId,
            s.transactionId,
            s.meterStart,
            meterStop,
            s.startedAt,
            uint40(block.timestamp),
            cost,
            refund,
            _payoutOf(msg.sender)
        );
        if (refund != 0) token.safeTransfer(s.driver, refund);
        return cost;
    }

    function _cost(uint256 sessionId, Session memory s, uint40 meterStop) private view returns (uint96 cost, uint96 refund) {
        if (meterStop < s.meterStart) revert MeterBelowStart(sessionId, s.meterStart, meterStop);
        uint256 duration = block.timestamp - s.startedAt;
        if (duration > maxDuration) duration = maxDuration;
        uint256 price = _price(_tariff(s.tariffId), meterStop - s.meterStart, duration);
        cost = price < s.deposit ? uint96(price) : s.deposit;
        refund = s.deposit - cost;
    }

    function _cancel(uint256 sessionId, Session storage s, CancelReason reason) private {
        s.state = SessionState.Cancelled;
        uint96 refund = s.deposit;
        emit SessionCancelled(sessionId, s.driver, refund, reason);
        token.safeTransfer(s.driver, refund);
    }

    function _requireState(uint256 sessionId, SessionState actual, SessionState expected) private pure {
        if (actual != expected) revert InvalidState(sessionId, actual);
    }
}
