// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Operator profile interface
/// @notice The legal data a formal invoice needs of the charge point operator who sold the energy: legal
///         name, postal address, VAT id and the VAT rate its prices include. Each registered operator
///         writes its own profile, and only its own; drivers' wallets read it when they build an invoice.
/// @dev Kept out of SessionEscrow, which is at EIP-170's size limit. Prices on chain (tariffs, the
///      settled cost) are gross: the invoice splits the cost into net and VAT at `vatRateBasisPoints`.
interface IOperatorProfile {
    /// @notice An operator's legal data.
    /// @param legalName Registered legal name (e.g. "Stadtwerke Musterstadt GmbH").
    /// @param postalAddress Postal address, lines separated by "\n".
    /// @param vatId VAT identification number (e.g. "DE123456789"); empty if the operator has none.
    /// @param vatRateBasisPoints VAT rate included in the operator's prices, in 1/100 % (1900 = 19 %).
    struct Profile {
        string legalName;
        string postalAddress;
        string vatId;
        uint16 vatRateBasisPoints;
    }

    /// @notice `operator` set its profile (legal name, VAT id and VAT rate as given).
    event ProfileSet(address indexed operator, string legalName, string vatId, uint16 vatRateBasisPoints);

    /// @notice `account` is not an operator registered in the station registry.
    error NotRegisteredOperator(address account);
    /// @notice A VAT rate above 100 % (`vatRateBasisPoints` > 10000).
    error InvalidVatRate(uint16 vatRateBasisPoints);
    /// @notice A profile needs a legal name and a postal address.
    error IncompleteProfile();
    /// @notice `operator` has set no profile.
    error NoProfile(address operator);

    /// @notice Set the caller's profile (the caller must be a registered operator); replaces the previous one.
    function setProfile(Profile calldata profile) external;

    /// @notice The profile of `operator`; reverts NoProfile if it has set none.
    function profileOf(address operator) external view returns (Profile memory);

    /// @notice Whether `operator` has set a profile.
    function hasProfile(address operator) external view returns (bool);

    /// @notice The station registry whose operators may write a profile (the deployment's escrow).
    function registry() external view returns (address);
}
