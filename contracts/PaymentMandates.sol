// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {Time} from "@openzeppelin/contracts/utils/types/Time.sol";
import {IPaymentMandates} from "./interfaces/IPaymentMandates.sol";
import {ISessionEscrow} from "./interfaces/ISessionEscrow.sol";

/// @title Payment mandates
/// @notice Payers let named operators open sessions against their tokens, within a cap per session, a total
///         and an expiry, revocable at once; RFID cards and eMSP tokens open sessions with no app. The escrow
///         holds the money (it pulls each deposit from the payer and refunds the payer); this contract only
///         decides whether a session may open, so no path here holds or moves tokens.
/// @dev Needs the escrow's MANDATES_ROLE (granted at deployment). An operator's take is bounded twice: the
///      escrow caps a session's cost at its deposit, and the deposits this contract lets open are bounded by
///      the cap per session and, together, by the total. A mandate's two slots are read once per open.
contract PaymentMandates is IPaymentMandates {
    /// @inheritdoc IPaymentMandates
    ISessionEscrow public immutable escrow;
    /// @inheritdoc IPaymentMandates
    uint256 public mandateCount;

    mapping(uint256 mandateId => Mandate) private _mandates;
    mapping(uint256 mandateId => mapping(address operator => bool)) private _operators;
    mapping(uint256 mandateId => mapping(bytes32 tokenRef => bool)) private _tokens;

    /// @param escrow_ The session escrow (it must grant this contract MANDATES_ROLE).
    constructor(ISessionEscrow escrow_) {
        if (address(escrow_) == address(0)) revert ZeroAddress();
        escrow = escrow_;
    }

    modifier onlyPayer(uint256 mandateId) {
        address payer = _mandates[mandateId].payer;
        if (payer == address(0)) revert UnknownMandate(mandateId);
        if (payer != msg.sender) revert NotPayer(mandateId, msg.sender);
        _;
    }

    /// @inheritdoc IPaymentMandates
    function createMandate(
        address[] calldata operators,
        uint96 capPerSession,
        uint96 total,
        uint40 expiry,
        bool anyToken,
        bytes32[] calldata tokenRefs
    ) public returns (uint256 mandateId) {
        mandateId = ++mandateCount;
        _mandates[mandateId].payer = msg.sender;
        _mandates[mandateId].anyToken = anyToken;
        emit MandateCreated(mandateId, msg.sender, anyToken);
        _setLimits(mandateId, capPerSession, total, expiry);
        for (uint256 i; i < operators.length; ++i) {
            _setOperator(mandateId, operators[i], true);
        }
        for (uint256 i; i < tokenRefs.length; ++i) {
            _setToken(mandateId, tokenRefs[i], true);
        }
    }

    /// @inheritdoc IPaymentMandates
    function createMandateWithPermit(
        address[] calldata operators,
        uint96 capPerSession,
        uint96 total,
        uint40 expiry,
        bool anyToken,
        bytes32[] calldata tokenRefs,
        uint256 allowance,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (uint256 mandateId) {
        address token = address(escrow.token());
        try IERC20Permit(token).permit(msg.sender, address(escrow), allowance, deadline, v, r, s) {} catch {}
        return createMandate(operators, capPerSession, total, expiry, anyToken, tokenRefs);
    }

    /// @inheritdoc IPaymentMandates
    function setLimits(uint256 mandateId, uint96 capPerSession, uint96 total, uint40 expiry)
        external
        onlyPayer(mandateId)
    {
        _setLimits(mandateId, capPerSession, total, expiry);
    }

    /// @inheritdoc IPaymentMandates
    function setOperator(uint256 mandateId, address operator, bool allowed) external onlyPayer(mandateId) {
        _setOperator(mandateId, operator, allowed);
    }

    /// @inheritdoc IPaymentMandates
    function setToken(uint256 mandateId, bytes32 tokenRef, bool linked) external onlyPayer(mandateId) {
        _setToken(mandateId, tokenRef, linked);
    }

    /// @inheritdoc IPaymentMandates
    function revoke(uint256 mandateId) external onlyPayer(mandateId) {
        _mandates[mandateId].revoked = true;
        emit MandateRevoked(mandateId);
    }

    /// @inheritdoc IPaymentMandates
    function openSession(
        uint256 mandateId,
        bytes32 tokenRef,
        uint32 stationId,
        uint8 connector,
        uint96 deposit,
        uint32 transactionId,
        uint40 meterStart
    ) external returns (uint256 sessionId) {
        Mandate storage m = _mandates[mandateId];
        (address payer, uint96 cap, uint96 total, uint96 committed) = (m.payer, m.capPerSession, m.total, m.committed);
        (uint40 expiry, bool revoked, bool anyToken) = (m.expiry, m.revoked, m.anyToken);
        if (payer == address(0)) revert UnknownMandate(mandateId);
        if (revoked) revert MandateIsRevoked(mandateId);
        if (Time.timestamp() >= expiry) revert MandateExpired(mandateId, expiry);
        if (!_operators[mandateId][msg.sender]) revert OperatorNotNamed(mandateId, msg.sender);
        if (!anyToken && !_tokens[mandateId][tokenRef]) revert TokenNotLinked(mandateId, tokenRef);
        if (deposit > cap) revert OverSessionCap(mandateId, deposit, cap);
        uint96 left = committed < total ? total - committed : 0;
        if (deposit > left) revert OverTotal(mandateId, deposit, left);
        committed += deposit;
        m.committed = committed;
        sessionId = escrow.openActiveSession(payer, msg.sender, stationId, connector, deposit, transactionId, meterStart);
        emit MandateSessionOpened(mandateId, sessionId, msg.sender, tokenRef, deposit, committed);
    }

    /// @inheritdoc IPaymentMandates
    function getMandate(uint256 mandateId) external view returns (Mandate memory) {
        return _mandates[mandateId];
    }

    /// @inheritdoc IPaymentMandates
    function isOperator(uint256 mandateId, address operator) external view returns (bool) {
        return _operators[mandateId][operator];
    }

    /// @inheritdoc IPaymentMandates
    function isLinked(uint256 mandateId, bytes32 tokenRef) external view returns (bool) {
        return _tokens[mandateId][tokenRef];
    }

    function _setLimits(uint256 mandateId, uint96 capPerSession, uint96 total, uint40 expiry) private {
        if (expiry <= Time.timestamp()) revert InvalidExpiry(expiry);
        Mandate storage m = _mandates[mandateId];
        (m.capPerSession, m.total, m.expiry) = (capPerSession, total, expiry);
        emit MandateLimitsSet(mandateId, capPerSession, total, expiry);
    }

    function _setOperator(uint256 mandateId, address operator, bool allowed) private {
        if (operator == address(0)) revert ZeroAddress();
        _operators[mandateId][operator] = allowed;
        emit MandateOperatorSet(mandateId, operator, allowed);
    }

    function _setToken(uint256 mandateId, bytes32 tokenRef, bool linked) private {
        _tokens[mandateId][tokenRef] = linked;
        emit MandateTokenSet(mandateId, tokenRef, linked);
    }
}
