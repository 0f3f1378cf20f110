"""Mint tokens to a driver (the MSP's top-up; a faucet on a development chain).

    brownie run scripts/fund_driver.py main DRIVER_ADDRESS AMOUNT --network evnet-anvil

AMOUNT in whole tokens ("100"). EVN_DEPLOYER_KEY holds a MINTER_ROLE key (Anvil dev account 0 on a
local chain); EVN_DEPLOYMENT names the deployment file."""

from brownie import EVToken

from ev_network.units import to_units
from scripts._common import account_from_env, deployment


def main(driver: str, amount: str):
    token = EVToken.at(deployment().token)
    minter = account_from_env("EVN_DEPLOYER_KEY", 0)
    token.mint(driver, to_units(amount, token.decimals()), {"from": minter})
    print(f"minted {amount} {token.symbol()} to {driver}; balance {token.balanceOf(driver) / 10 ** token.decimals()}")
