"""The HTTP under web3's HTTPProvider, made cheap: a JSON-RPC request through one urllib3 connection pool
costs about 0.4 ms of CPU, through a requests Session about 1.5 ms (most of it requests looking up proxy,
netrc and CA settings in the environment again for every request). Under load a busy daemon's chain
threads spent more time there than talking to the node. :class:`PooledSession` is what web3 asks of a
requests Session (``post``), on urllib3 (which requests itself is built on); its errors are the requests
exceptions web3's retries and :func:`ev_network.errors.chain_errors` expect. Used only where it behaves
exactly as requests would (:func:`pooled_session_for`): no proxy, no credentials in the URL; HTTPS checked
against the CA bundle requests would use."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

import certifi
import requests
import urllib3
from requests.utils import get_environ_proxies
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import SSLError as Urllib3SSLError

POOL_SIZE = 32  # connections kept open to the node at most (opened on demand: one per thread calling at once)


class PooledResponse:
    """The part of a requests Response web3 reads: the body, and raise_for_status."""

    def __init__(self, url: str, response: urllib3.BaseHTTPResponse) -> None:
        self.url, self.status_code, self.content = url, response.status, response.data

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise requests.HTTPError(f"{self.status_code} Error for url: {self.url}", response=None)

    def __enter__(self) -> PooledResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class PooledSession:
    """A requests-Session stand-in for web3's HTTPProvider (its ``session`` argument): POSTs through one
    thread-safe urllib3 pool, no retries (web3 retries what it may), requests' exceptions."""

    def __init__(self, pool_size: int = POOL_SIZE) -> None:
        # requests' choice of CA certificates: REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, else certifi's
        ca = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()
        where = {"ca_cert_dir": ca} if os.path.isdir(ca) else {"ca_certs": ca}
        self.pool = urllib3.PoolManager(maxsize=pool_size, retries=False, **where)

    def post(self, url: str, data: Any = None, timeout: Any = None, headers: dict | None = None, **_: Any) -> Any:
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        try:
            response = self.pool.request(
                "POST", url, body=data, headers=headers, timeout=urllib3.Timeout(connect=connect, read=read)
            )
        except NewConnectionError as exc:  # refused, no route, unknown host: as requests says it
            raise requests.ConnectionError(exc) from exc
        except ConnectTimeoutError as exc:
            raise requests.ConnectTimeout(exc) from exc
        except ReadTimeoutError as exc:  # "... (read timeout=5)": chain_errors names the limit
            raise requests.ReadTimeout(exc) from exc
        except Urllib3SSLError as exc:
            raise requests.exceptions.SSLError(exc) from exc
        except (ProtocolError, Urllib3Error, OSError) as exc:  # reset, closed by the node mid-answer
            raise requests.ConnectionError(exc) from exc
        return PooledResponse(url, response)

    def close(self) -> None:
        self.pool.clear()


def pooled_session_for(rpc_url: str) -> PooledSession | None:
    """A PooledSession for ``rpc_url``, or None where requests would do more than a plain POST: a proxy
    for it in the environment, user:password in the URL (then web3 keeps its requests Session)."""
    parts = urlparse(rpc_url)
    if parts.username or parts.password or get_environ_proxies(rpc_url):
        return None
    return PooledSession()
