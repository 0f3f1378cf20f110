"""Shared Python bindings of the EV Network contracts, used by the Core Client and the EV Wallet.

Loads the deployment file and the ABIs shipped in ``ev_network/abi`` (no Brownie, no compiler at
runtime), sends transactions (:mod:`ev_network.tx`), decodes events (:mod:`ev_network.events`)
and prices sessions exactly as the escrow does (:mod:`ev_network.pricing`).
"""

from ev_network.deployment import Deployment
from ev_network.errors import ChainUnavailable, ContractRevert, EVNetworkError

__all__ = ["ChainUnavailable", "ContractRevert", "Deployment", "EVNetworkError"]
