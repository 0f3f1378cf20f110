// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ISessionEscrow} from "./ISessionEscrow.sol";

/// @title Payment mandates interface
/// @notice A payer (a driver, or an eMSP for its customers) lets named operators open charging sessions
///         against its tokens, within limits it sets: a cap per session, a total (what was committed is
///         tracked), an expiry; it can revoke at once. Each session then runs in the escrow as any other
///         (tariff snapshot, settlement, refund to the payer).
///
///         Cards and eMSP tokens are linked by a reference that names no card: `tokenRef` =
///         keccak256(salt || uid), where `salt` is 32 random bytes the payer keeps and hands, off chain, only
///         to the operators it names. A plain hash of an RFID uid (4 to 10 bytes, often sequential) is
///         reversed by trying every uid; with a secret salt there is nothing to try, and two mandates (or
///         two payers) linking the same card publish unrelated references.
interface IPaymentMandates {
    /// @notice A mandate. Amounts in the token's smallest unit.
    /// @param payer Whose tokens pay (sessions are in its lanes; refunds go back to it).
    /// @param capPerSession The largest deposit one session may lock.
    /// @param total The most all sessions under the mandate may lock together.
    /// @param committed What sessions opened under it locked so far (their deposits: the most they can cost).
    /// @param expiry Opens are allowed before this time (unix seconds).
    /// @param revoked Revoked by the payer: opens nothing more.
    /// @param anyToken Sessions need no linked token (an eMSP authorizes its own tokens); else a linked one.
    struct Mandate {
        address payer;
        uint96 capPerSession;
        uint96 total;
        uint96 committed;
        uint40 expiry;
        bool revoked;
        bool anyToken;
    }

    /// @notice `payer` created mandate `mandateId`.
    event MandateCreated(uint256 indexed mandateId, address indexed payer, bool anyToken);
    /// @notice The limits of mandate `mandateId` are now `capPerSession`, `total` and `expiry`.
    event MandateLimitsSet(uint256 indexed mandateId, uint96 capPerSession, uint96 total, uint40 expiry);
    /// @notice `operator` may (`allowed`) or may no longer open sessions under mandate `mandateId`.
    event MandateOperatorSet(uint256 indexed mandateId, address indexed operator, bool allowed);
    /// @notice Token reference `tokenRef` was linked to (`linked`) or unlinked from mandate `mandateId`.
    event MandateTokenSet(uint256 indexed mandateId, bytes32 indexed tokenRef, bool linked);
    /// @notice The payer revoked mandate `mandateId`: it opens nothing more.
    event MandateRevoked(uint256 indexed mandateId);
    /// @notice `operator` opened session `sessionId` under mandate `mandateId` for token `tokenRef`, locking
    ///         `deposit`; the mandate has `committed` locked in all.
    event MandateSessionOpened(
        uint256 indexed mandateId,
        uint256 indexed sessionId,
        address indexed operator,
        bytes32 tokenRef,
        uint96 deposit,
        uint96 committed
    );

    /// @notice There is no mandate `mandateId`.
    error UnknownMandate(uint256 mandateId);
    /// @notice `account` is not the payer of mandate `mandateId`.
    error NotPayer(uint256 mandateId, address account);
    /// @notice Mandate `mandateId` was revoked.
    error MandateIsRevoked(uint256 mandateId);
    /// @notice Mandate `mandateId` expired at `expiry`.
    error MandateExpired(uint256 mandateId, uint40 expiry);
    /// @notice Mandate `mandateId` does not name `operator`.
    error OperatorNotNamed(uint256 mandateId, address operator);
    /// @notice Token reference `tokenRef` is not linked to mandate `mandateId`.
    error TokenNotLinked(uint256 mandateId, bytes32 tokenRef);
    /// @notice A deposit of `deposit` is above mandate `mandateId`'s cap per session `cap`.
    error OverSessionCap(uint256 mandateId, uint96 deposit, uint96 cap);
    /// @notice A deposit of `deposit` is above what is left of mandate `mandateId`'s total, `left`.
    error OverTotal(uint256 mandateId, uint96 deposit, uint96 left);
    /// @notice An expiry must lie in the future; `expiry` does not.
    error InvalidExpiry(uint40 expiry);
    /// @notice An address that must not be zero was zero.
    error ZeroAddress();

    /// @notice Create a mandate of the caller (the payer). Fund it by approving the escrow (it pulls each
    ///         session's deposit from the payer), or use createMandateWithPermit.
    /// @param operators The operators that may open sessions under it.
    /// @param capPerSession The largest deposit one session may lock.
    /// @param total The most all its sessions may lock together.
    /// @param expiry Opens are allowed before this time (unix seconds, in the future).
    /// @param anyToken Whether sessions need no linked token (an eMSP's mandate).
    /// @param tokenRefs Token references to link (keccak256(salt || uid), see the contract's notice).
    /// @return mandateId The new mandate's id.
    function createMandate(
        address[] calldata operators,
        uint96 capPerSession,
        uint96 total,
        uint40 expiry,
        bool anyToken,
        bytes32[] calldata tokenRefs
    ) external returns (uint256 mandateId);

    /// @notice createMandate with an EIP-2612 permit for the escrow (spender) in the same transaction. A
    ///         permit that fails (e.g. already used) is ignored; opens then need an existing allowance.
    /// @param operators The operators that may open sessions under it.
    /// @param capPerSession The largest deposit one session may lock.
    /// @param total The most all its sessions may lock together.
    /// @param expiry Opens are allowed before this time (unix seconds, in the future).
    /// @param anyToken Whether sessions need no linked token.
    /// @param tokenRefs Token references to link.
    /// @param allowance The permit's value (usually `total`).
    /// @param deadline Permit deadline.
    /// @param v Permit signature v.
    /// @param r Permit signature r.
    /// @param s Permit signature s.
    /// @return mandateId The new mandate's id.
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
    ) external returns (uint256 mandateId);

    /// @notice Change a mandate's limits (payer only). A total below what is committed opens nothing more.
    /// @param mandateId The mandate.
    /// @param capPerSession The largest deposit one session may lock.
    /// @param total The most all its sessions may lock together.
    /// @param expiry Opens are allowed before this time (in the future).
    function setLimits(uint256 mandateId, uint96 capPerSession, uint96 total, uint40 expiry) external;

    /// @notice Name or un-name an operator (payer only).
    /// @param mandateId The mandate.
    /// @param operator The operator.
    /// @param allowed Whether it may open sessions under the mandate.
    function setOperator(uint256 mandateId, address operator, bool allowed) external;

    /// @notice Link or unlink a token reference (payer only).
    /// @param mandateId The mandate.
    /// @param tokenRef keccak256(salt || uid).
    /// @param linked Whether sessions for this token may open under the mandate.
    function setToken(uint256 mandateId, bytes32 tokenRef, bool linked) external;

    /// @notice Revoke a mandate at once (payer only): it opens nothing more. Sessions already running keep
    ///         the deposit they locked and settle as usual (the remainder goes back to the payer).
    /// @param mandateId The mandate.
    function revoke(uint256 mandateId) external;

    /// @notice Open a started session under a mandate (a named operator, for a card tapped or a token
    ///         authorized at its charge point): checks the mandate (not revoked, not expired, the caller
    ///         named, the token linked unless anyToken, deposit within the cap per session and what is left
    ///         of the total), commits the deposit, and has the escrow open the session Active, pulling the
    ///         deposit from the payer. The session then settles as any other.
    /// @param mandateId The mandate.
    /// @param tokenRef The token's reference (recorded in the event).
    /// @param stationId The caller's station.
    /// @param connector Connector number.
    /// @param deposit Most the session can cost.
    /// @param transactionId The OCPP transaction id given to the charge point.
    /// @param meterStart Meter reading at start, in Wh.
    /// @return sessionId The escrow session.
    function openSession(
        uint256 mandateId,
        bytes32 tokenRef,
        uint32 stationId,
        uint8 connector,
        uint96 deposit,
        uint32 transactionId,
        uint40 meterStart
    ) external returns (uint256 sessionId);

    /// @notice The escrow sessions open in.
    function escrow() external view returns (ISessionEscrow);

    /// @notice Mandate `mandateId` (payer zero if none).
    /// @param mandateId The mandate.
    function getMandate(uint256 mandateId) external view returns (Mandate memory);

    /// @notice Whether `operator` is named by mandate `mandateId`.
    /// @param mandateId The mandate.
    /// @param operator The operator.
    function isOperator(uint256 mandateId, address operator) external view returns (bool);

    /// @notice Whether `tokenRef` is linked to mandate `mandateId`.
    /// @param mandateId The mandate.
    /// @param tokenRef The token reference.
    function isLinked(uint256 mandateId, bytes32 tokenRef) external view returns (bool);

    /// @notice Number of mandates ever created; ids run from 1 to mandateCount.
    function mandateCount() external view returns (uint256);
}
