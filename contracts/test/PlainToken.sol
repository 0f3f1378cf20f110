// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title Test token without permit
/// @notice Stands in for a real stablecoin that has no EIP-2612 permit, to prove the escrow works
///         with any ERC-20. Anyone may mint: test use only.
contract PlainToken is ERC20 {
    constructor() ERC20("Plain Test Dollar", "PTD") {}

    /// @notice Mint `amount` to `to` (unrestricted: tests only).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
