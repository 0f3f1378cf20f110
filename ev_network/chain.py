"""Connecting to the chain named in a deployment."""

from __future__ import annotations

from web3 import Web3

from ev_network.deployment import Deployment
from ev_network.errors import ChainUnavailable, EVNetworkError
from ev_network.tx import wait_for_chain


def http_web3(rpc_url: str, timeout: float = 10.0, retries: bool = True) -> Web3:
    """A Web3 over HTTP that asks the node for its chain id once: web3's request validation would
    otherwise send eth_chainId before every call, doubling the requests of a busy client.
    ``retries=False`` turns off web3's own retries (for callers that retry and log outages themselves)."""
    options: dict = {"request_kwargs": {"timeout": timeout}}
    if not retries:
        options["exception_retry_configuration"] = None
    provider = Web3.HTTPProvider(rpc_url, cache_allowed_requests=True, cacheable_requests={"eth_chainId"}, **options)
    return Web3(provider)


def connect(rpc_url: str, deployment: Deployment | None = None, timeout: float = 10.0) -> Web3:
    """A Web3 on ``rpc_url``; checks that it answers and is the deployment's chain."""
    w3 = http_web3(rpc_url, timeout)
    try:
        chain_id = wait_for_chain(w3, timeout=timeout)
    except ChainUnavailable as exc:
        raise ChainUnavailable(f"cannot reach the chain at {rpc_url}: is the node running? ({exc})") from None
    if deployment is not None and chain_id != deployment.chain_id:
        raise EVNetworkError(f"{rpc_url} is chain {chain_id}, but the deployment is for chain {deployment.chain_id}")
    return w3
