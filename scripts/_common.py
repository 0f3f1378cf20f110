"""Shared by the Brownie admin scripts: accounts from the environment and the deployment file."""

import os
from pathlib import Path

import brownie.network.contract as _brownie_contract
from brownie import accounts, chain

from ev_network.deployment import Deployment
from ev_network.devaccounts import ANVIL_CHAIN_ID, dev_account

# Brownie 1.22 fails recording deployments of live networks ("TypeError: dict object expected; got
# ...Sources"), in a background thread after deploy() and directly in Contract.at(). We keep our own
# deployment file and never read Brownie's records, so its bookkeeping is switched off here.
_brownie_contract._add_deployment = lambda *args, **kwargs: None


def account_from_env(var: str, dev_index: int):
    """The account whose hex key is in ``var``; on a local Anvil, Anvil's dev account ``dev_index``."""
    key = os.environ.get(var)
    if key:
        return accounts.add(key)
    if chain.id != ANVIL_CHAIN_ID:
        raise SystemExit(f"{var} is required on any chain but a local Anvil (chain id 31337)")
    return accounts.add(dev_account(dev_index).key.hex())


def deployment() -> Deployment:
    return Deployment.load(Path(os.environ.get("EVN_DEPLOYMENT", "deployments/local.json")))
