// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IOperatorProfile} from "./interfaces/IOperatorProfile.sol";
import {StationRegistry} from "./StationRegistry.sol";

/// @title Operator profile
/// @notice Registered operators publish the legal data of their invoices (legal name, address, VAT id,
///         VAT rate), each for itself.
contract OperatorProfile is IOperatorProfile {
    /// @inheritdoc IOperatorProfile
    address public immutable registry;

    mapping(address operator => Profile) private _profiles;

    /// @param registry_ The station registry (the deployment's SessionEscrow) that lists the operators.
    constructor(address registry_) {
        registry = registry_;
    }

    /// @inheritdoc IOperatorProfile
    function setProfile(Profile calldata profile) external {
        if (!StationRegistry(registry).operatorOf(msg.sender).registered) revert NotRegisteredOperator(msg.sender);
        if (bytes(profile.legalName).length == 0 || bytes(profile.postalAddress).length == 0) {
            revert IncompleteProfile();
        }
        if (profile.vatRateBasisPoints > 10_000) revert InvalidVatRate(profile.vatRateBasisPoints);
        _profiles[msg.sender] = profile;
        emit ProfileSet(msg.sender, profile.legalName, profile.vatId, profile.vatRateBasisPoints);
    }

    /// @inheritdoc IOperatorProfile
    function profileOf(address operator) external view returns (Profile memory) {
        if (!hasProfile(operator)) revert NoProfile(operator);
        return _profiles[operator];
    }

    /// @inheritdoc IOperatorProfile
    function hasProfile(address operator) public view returns (bool) {
        return bytes(_profiles[operator].legalName).length != 0;
    }
}
