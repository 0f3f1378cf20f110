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
///
///         Session ids: every driver has LANES lanes, each holding one session at a time, so a driver can
///         have up to LANES sessions open at once. sessionId = driver << 96 | lane << 16 | seq, where seq
///         counts the sessions of the lane (from 1). Written in hex, an id is the driver's address followed
///         by the lane and the sequence number.
/// @dev Gas: a session is one storage slot, and a lane's slot is reused by its next session, so a
///      returning driver's open overwrites a non-zero slot (5,000 gas) instead of filling a fresh one
///      (22,100). Storage keeps only each lane's latest session; an earlier one reads as Closed, and its
///      events are its record. Works with any ERC-20 through SafeERC20; permit is optional.
contract SessionEscrow is StationRegistry {
    using SafeERC20 for IERC20;

    /// @notice Closed: the session ended (settled, cancelled or expired) and its lane holds a newer one.
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

    /// @notice A session as getSession returns it (fields past `state` are zero for None and Closed).
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

    /// @notice Lanes per driver: the most sessions one driver can have open at once.
    uint256 public constant LANES = 256;
    /// @dev Bits of a session id between the sequence number (0-15), the lane (16-23) and the driver (96-255).
    uint256 private constant ID_UNUSED_BITS = ((1 << 96) - 1) ^ ((1 << 24) - 1);

    /// @notice The token deposits are paid in.
    IERC20 public immutable token;
    /// @notice Seconds after open from which the driver may cancel a session that has not started.
    uint32 public immutable startTimeout;
    /// @notice Longest billable charging time, in seconds; the time fee stops counting after it.
    uint32 public immutable maxDuration;
    /// @notice Seconds after maxDuration from which the driver may reclaim a session never settled.
    uint32 public immutable reclaimGrace;

    mapping(address driver => Session[LANES]) private _lanes;

    event SessionRequested(
        uint256 indexed sessionId, address indexed driver, uint32 indexed stationId, uint8 connector, uint96 deposit, uint32 tariffId
    );
    event SessionStarted(uint256 indexed sessionId, uint32 transactionId, uint40 meterStart, uint40 startedAt);
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
    event SessionCancelled(uint256 indexed sessionId, address indexed driver, uint96 refund, CancelReason reason);
    event SessionExpired(uint256 indexed sessionId, address indexed driver, uint96 refund);

    error ZeroDeposit();
    error StationInactive(uint32 stationId);
    error InvalidConnector(uint32 stationId, uint8 connector);
    error InvalidState(uint256 sessionId, SessionState state);
    error NotDriver(uint256 sessionId, address account);
    error TooEarly(uint256 sessionId, uint256 allowedAt);
    error MeterBelowStart(uint256 sessionId, uint40 meterStart, uint40 meterStop);
    error NoFreeLane(address driver);
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
    ///         The session takes the caller's first lane without an open session.
    /// @param stationId Station to charge at (must be active).
    /// @param connector Connector number, 1 to the station's connector count.
    /// @param deposit Most the driver will pay; the unused part is refunded at settlement.
    /// @return sessionId The new session's id.
    function open(uint32 stationId, uint8 connector, uint96 deposit) external returns (uint256 sessionId) {
        return _open(stationId, connector, deposit);
    }

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
    ) external returns (uint256 sessionId) {
        try IERC20Permit(address(token)).permit(msg.sender, address(this), allowance, deadline, v, r, s) {} catch {}
        return _open(stationId, connector, deposit);
    }

    /// @notice Ask the operator to stop a running session. Only an event: the Core Client sends
    ///         RemoteStopTransaction and settles when the charge point reports the stop.
    /// @param sessionId An Active session of the caller.
    function requestStop(uint256 sessionId) external {
        Session storage s = _sessionOfCaller(sessionId, SessionState.Active);
        emit StopRequested(sessionId, s.stationId);
    }

    /// @notice Cancel a session that the operator neither started nor rejected within startTimeout.
    ///         Refunds the whole deposit.
    /// @param sessionId A Requested session of the caller.
    function cancel(uint256 sessionId) external {
        Session storage s = _sessionOfCaller(sessionId, SessionState.Requested);
        uint256 allowedAt = uint256(s.since) + startTimeout;
        if (block.timestamp < allowedAt) revert TooEarly(sessionId, allowedAt);
        _cancel(sessionId, s, CancelReason.DriverCancelled);
    }

    /// @notice Take back the whole deposit of a session the operator never settled, once maxDuration
    ///         plus reclaimGrace have passed since it started.
    /// @param sessionId An Active session of the caller.
    function reclaim(uint256 sessionId) external {
        Session storage s = _sessionOfCaller(sessionId, SessionState.Active);
        uint256 allowedAt = uint256(s.since) + maxDuration + reclaimGrace;
        if (block.timestamp < allowedAt) revert TooEarly(sessionId, allowedAt);
        uint96 refund = _end(s, SessionState.Expired);
        emit SessionExpired(sessionId, msg.sender, refund);
        token.safeTransfer(msg.sender, refund);
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
        (Session storage s,) = _session(sessionId, SessionState.Requested);
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

    /// @notice Session `sessionId`: state None if it does not exist, Closed if its lane moved on.
    /// @param sessionId The session.
    function getSession(uint256 sessionId) external view returns (SessionInfo memory info) {
        (Session storage s, address driver, SessionState state) = _load(sessionId);
        info.state = state;
        if (state == SessionState.None) return info;
        (info.driver, info.lane, info.seq) = (driver, uint8(sessionId >> 16), uint16(sessionId));
        if (state == SessionState.Closed) return info;
        (info.deposit, info.stationId, info.tariffId) = (s.deposit, s.stationId, s.tariffId);
        (info.since, info.meterStart) = (s.since, s.meterStart);
    }

    /// @notice What settling `sessionId` now with `meterStop` would charge (capped at the deposit).
    /// @param sessionId An Active session.
    /// @param meterStop Meter reading at stop, in Wh.
    function settlementCost(uint256 sessionId, uint40 meterStop) external view returns (uint256 cost) {
        (Session storage s,) = _session(sessionId, SessionState.Active);
        (cost,) = _cost(sessionId, s, meterStop);
    }

    // --------------------------------------------------------------- internal

    function _open(uint32 stationId, uint8 connector, uint96 deposit) private returns (uint256 sessionId) {
        if (deposit == 0) revert ZeroDeposit();
        Station memory station = _stations[stationId];
        if (station.operator == address(0)) revert UnknownStation(stationId);
        if (!station.active) revert StationInactive(stationId);
        if (connector == 0 || connector > station.connectors) revert InvalidConnector(stationId, connector);

        uint256 lane = _freeLane(msg.sender);
        Session storage s = _lanes[msg.sender][lane];
        uint16 seq = s.seq + 1;
        sessionId = (uint256(uint160(msg.sender)) << 96) | (lane << 16) | seq;
        _lanes[msg.sender][lane] =
            Session(deposit, stationId, station.tariffId, SessionState.Requested, uint32(block.timestamp), 0, seq);
        emit SessionRequested(sessionId, msg.sender, stationId, connector, deposit, station.tariffId);
        token.safeTransferFrom(msg.sender, address(this), deposit);
    }

    /// @dev The first lane of `driver` that holds no open session and has sequence numbers left.
    function _freeLane(address driver) private view returns (uint256 lane) {
        Session[LANES] storage lanes = _lanes[driver];
        for (; lane < LANES; ++lane) {
            Session storage s = lanes[lane];
            if (s.state != SessionState.Requested && s.state != SessionState.Active && s.seq != type(uint16).max) {
                return lane;
            }
        }
        revert NoFreeLane(driver);
    }

    function _start(uint256 sessionId, uint32 transactionId, uint40 meterStart) private {
        (Session storage s,) = _session(sessionId, SessionState.Requested);
        _checkStationOperator(s.stationId);
        s.state = SessionState.Active;
        s.since = uint32(block.timestamp);
        s.meterStart = meterStart;
        emit SessionStarted(sessionId, transactionId, meterStart, uint40(block.timestamp));
    }

    /// @dev Effects and the driver's refund; returns the cost, which the caller pays out.
    function _settle(uint256 sessionId, uint40 meterStop) private returns (uint256) {
        (Session storage s, address driver) = _session(sessionId, SessionState.Active);
        Session memory m = s;
        _checkStationOperator(m.stationId);
        (uint96 cost, uint96 refund) = _cost(sessionId, m, meterStop);
        _end(s, SessionState.Settled);
        emit SessionSettled(
            sessionId,
            driver,
            msg.sender,
            m.stationId,
            m.tariffId,
            m.meterStart,
            meterStop,
            m.since,
            uint40(block.timestamp),
            cost,
            refund,
            _payoutOf(msg.sender)
        );
        if (refund != 0) token.safeTransfer(driver, refund);
        return cost;
    }

    function _cost(uint256 sessionId, Session memory s, uint40 meterStop) private view returns (uint96 cost, uint96 refund) {
        if (meterStop < s.meterStart) revert MeterBelowStart(sessionId, s.meterStart, meterStop);
        uint256 duration = block.timestamp - s.since;
        if (duration > maxDuration) duration = maxDuration;
        uint256 price = _price(_tariff(s.tariffId), meterStop - s.meterStart, duration);
        cost = price < s.deposit ? uint96(price) : s.deposit;
        refund = s.deposit - cost;
    }

    function _cancel(uint256 sessionId, Session storage s, CancelReason reason) private {
        address driver = address(uint160(sessionId >> 96));
        uint96 refund = _end(s, SessionState.Cancelled);
        emit SessionCancelled(sessionId, driver, refund, reason);
        token.safeTransfer(driver, refund);
    }

    /// @dev Moves `s` to its final state; returns its deposit.
    function _end(Session storage s, SessionState state) private returns (uint96 deposit) {
        s.state = state;
        s.since = uint32(block.timestamp);
        return s.deposit;
    }

    /// @dev The lane slot of `sessionId`, its driver and its state (Closed once the lane holds a later session).
    function _load(uint256 sessionId) private view returns (Session storage s, address driver, SessionState state) {
        driver = address(uint160(sessionId >> 96));
        s = _lanes[driver][uint8(sessionId >> 16)];
        uint16 seq = uint16(sessionId);
        uint16 current = s.seq;
        if (seq == 0 || seq > current || sessionId & ID_UNUSED_BITS != 0) state = SessionState.None;
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
