// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title EV Network token
/// @notice The ERC-20 drivers pre-pay charging sessions with. Supports EIP-2612 permit so a driver
///         can open a session in one transaction. New tokens are minted by MINTER_ROLE: the MSP's
///         top-up in production, a faucet on a development chain.
contract EVToken is ERC20, ERC20Permit, AccessControl {
    /// @notice Role allowed to mint (the MSP's top-up service).
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @param name_ Token name, e.g. "EV Network Euro".
    /// @param symbol_ Token symbol, e.g. "EVE".
    /// @param admin Account that receives DEFAULT_ADMIN_ROLE and MINTER_ROLE.
    constructor(string memory name_, string memory symbol_, address admin) ERC20(name_, symbol_) ERC20Permit(name_) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, admin);
    }

    /// @notice Mint `amount` tokens to `to`. Only MINTER_ROLE.
    /// @param to Recipient (a driver topping up).
    /// @param amount Amount in the token's smallest unit.
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }
}
