"""Anvil's well-known development accounts and chain id: what a dev chain's faucet and the Core
Client's ``operator register --dev`` need. Pure constants; the processes (Anvil, Brownie) that make a
dev chain live in ``tools/devchain.py``, outside the runtime packages."""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount

ANVIL_CHAIN_ID = 31337  # a local Anvil: development accounts and faucets are allowed there
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"


def dev_account(index: int) -> LocalAccount:
    """Anvil's well-known development account ``index`` (public keys: never use on a real chain)."""
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
