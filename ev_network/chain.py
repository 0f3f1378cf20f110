"""Connecting to the chain named in a deployment: a bounded probe (no call waits longer than its
timeout, and web3 does not retry it), the chain id, and code at the deployment's addresses."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlparse

from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import Timeout as RequestsTimeout
from web3 import Web3

from ev_network.deployment import HOW_TO_DEPLOY, Deployment
from ev_network.errors import ChainUnavailable, DeploymentError, EVNetworkError, chain_errors, network_reason
from ev_network.http_pool import pooled_session_for

CONNECT_TIMEOUT_S = 3.0  # TCP connect; reads get the caller's timeout
PROBE_TIMEOUT_S = 5.0  # the first call: a server that accepts but never answers fails after this


class BadRpcUrl(EVNetworkError, ValueError):
    """Text that cannot be a JSON-RPC node's URL."""


def http_web3(rpc_url: str, timeout: float = 10.0, retries: bool = True) -> Web3:
    """A Web3 over HTTP that asks the node for its chain id once: web3's request validation would
    otherwise send eth_chainId before every call, doubling the requests of a busy client. Each request
    waits at most ``CONNECT_TIMEOUT_S`` to connect and ``timeout`` to read. ``retries=False`` turns off
    web3's own retries (for callers that retry and log outages themselves, or must fail fast). Requests go
    through one urllib3 connection pool (:mod:`ev_network.http_pool`) where that is what requests would do."""
    try:
        parts = urlparse(rpc_url)
    except ValueError:  # "Invalid IPv6 URL": http://[::1
        parts = urlparse("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRpcUrl(f"{rpc_url!r} is not a JSON-RPC node URL: expected http://HOST:PORT (or https://...)")
    options: dict = {"request_kwargs": {"timeout": (min(CONNECT_TIMEOUT_S, timeout), timeout)}}
    if not retries:
        options["exception_retry_configuration"] = None
    if (session := pooled_session_for(rpc_url)) is not None:
        options["session"] = session
    provider = Web3.HTTPProvider(rpc_url, cache_allowed_requests=True, cacheable_requests={"eth_chainId"}, **options)
    return Web3(provider)


def probe_chain_id(
    rpc_url: str, wait_s: float = 0.0, timeout: float = PROBE_TIMEOUT_S, timeout_name: str | None = None
) -> int:
    """The chain id of the node at ``rpc_url``. A host that does not resolve fails at once; a refused
    connection is tried again for ``wait_s`` (a node that is starting); a server that accepts but does
    not answer within ``timeout`` (the setting ``timeout_name``, if given, is named), or answers with
    something other than JSON-RPC, fails at once. Raises ChainUnavailable naming the URL."""
    probe = http_web3(rpc_url, timeout, retries=False)
    host = urlparse(rpc_url).hostname or ""
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise ChainUnavailable(
            f"cannot reach the chain at {rpc_url}: cannot resolve host {host!r} ({exc.strerror})"
        ) from None
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return probe.eth.chain_id
        except RequestsConnectionError as exc:
            if time.monotonic() >= deadline:
                reason = network_reason(exc)
                raise ChainUnavailable(
                    f"cannot reach the chain at {rpc_url}: is the node running? ({reason})"
                ) from None
            time.sleep(0.1)
        except RequestsTimeout:
            setting = f" ({timeout_name})" if timeout_name else ""
            raise ChainUnavailable(
                f"cannot reach the chain at {rpc_url}: it accepted the connection but sent no answer within "
                f"{timeout:g} s{setting}; is it a JSON-RPC node?"
            ) from None
        except Exception as exc:
            text = " ".join(str(exc).split())[:120]
            raise ChainUnavailable(
                f"{rpc_url} does not answer like a JSON-RPC node ({type(exc).__name__}: {text})"
            ) from None


def check_code(w3: Web3, deployment: Deployment) -> None:
    """DeploymentError unless the escrow and the token of ``deployment`` have code on ``w3``'s chain."""
    for what, address in (("SessionEscrow", deployment.escrow), ("deposit token", deployment.token)):
        with chain_errors(w3):
            code = w3.eth.get_code(address)
        if not code:
            raise DeploymentError(
                f"no {what} contract at {address} on chain {deployment.chain_id} "
                f"({w3.provider.endpoint_uri}): the deployment file is for another chain, or the chain was reset "
                f"since; {HOW_TO_DEPLOY}"
            )


def connect(
    rpc_url: str,
    deployment: Deployment | None = None,
    timeout: float = 10.0,
    *,
    wait: bool = True,
    retries: bool = True,
    timeout_name: str | None = None,
) -> Web3:
    """A Web3 on ``rpc_url`` (reads wait up to ``timeout``) once a node answers there: with ``wait``, a
    node that refuses connections is given ``timeout`` seconds to come up, else one probe decides; a
    silent server fails within ``PROBE_TIMEOUT_S`` either way. With a ``deployment``, checks that it is
    the deployment's chain and that its contracts are there. ``timeout_name``: the setting ``timeout``
    comes from, named when the node does not answer in time."""
    chain_id = probe_chain_id(rpc_url, timeout if wait else 0.0, min(timeout, PROBE_TIMEOUT_S), timeout_name)
    if deployment is not None and chain_id != deployment.chain_id:
        raise DeploymentError(f"{rpc_url} is chain {chain_id}, but the deployment is for chain {deployment.chain_id}")
    w3 = http_web3(rpc_url, timeout, retries)
    if deployment is not None:
        check_code(w3, deployment)
    return w3
