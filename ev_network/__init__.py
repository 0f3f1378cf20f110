"""Shared Python bindings of the EV Network contracts, used by the Core Client and the EV Wallet.

Loads the deployment file and the ABIs shipped in ``ev_network/abi`` (no Brownie, no compiler at
runtime), connects with bounded waits (:mod:`ev_network.chain`), sends transactions
(:mod:`ev_network.tx`), decodes events (:mod:`ev_network.events`), folds a session's events into
one view (:mod:`ev_network.session_view`) and prices sessions exactly as the escrow does
(:mod:`ev_network.pricing`). Every error it raises is an :class:`EVNetworkError`.
"""

from ev_network.deployment import Deployment
from ev_network.errors import ChainUnavailable, ContractRevert, DeploymentError, EVNetworkError

__all__ = ["ChainUnavailable", "ContractRevert", "Deployment", "DeploymentError", "EVNetworkError"]
