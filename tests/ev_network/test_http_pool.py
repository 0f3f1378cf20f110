"""web3 over the urllib3 pool (ev_network.http_pool) against real servers: it answers as the requests Session
did, and a chain that refuses, never answers, drops the connection or answers HTTP 500 fails as before."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests

from ev_network.chain import http_web3
from ev_network.errors import ChainUnavailable, chain_errors
from ev_network.http_pool import PooledSession, pooled_session_for
from tools.devchain import free_port
from tools.harness.chain import Net


def session_of(w3) -> object:
    return w3.provider._request_session_manager._explicit_session


def test_web3_reads_and_writes_through_the_pool(clean_chain: Net) -> None:
    net = clean_chain
    w3 = http_web3(net.rpc_url)
    assert isinstance(session_of(w3), PooledSession)
    assert w3.eth.chain_id == net.deployment.chain_id
    before = w3.eth.get_block_number()
    net.token(net.admin).mint(net.payout.address, 1)  # through the test's own Web3, also pooled
    assert w3.eth.block_number == before + 1
    batch = w3.provider.make_batch_request([("eth_blockNumber", []), ("eth_chainId", [])])
    assert [int(r["result"], 16) for r in batch] == [before + 1, net.deployment.chain_id]


def test_a_refused_or_silent_chain_is_unavailable_naming_why() -> None:
    refused = http_web3(f"http://127.0.0.1:{free_port()}", 0.5, retries=False)
    with pytest.raises(ChainUnavailable, match="Connection refused"), chain_errors(refused):
        refused.eth.get_block_number()
    with socket.socket() as listener:  # accepts, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        silent = http_web3(f"http://127.0.0.1:{listener.getsockname()[1]}", 0.5, retries=False)
        with pytest.raises(ChainUnavailable, match=r"no answer within 0\.5 s"), chain_errors(silent):
            silent.eth.get_block_number()


class _Failing(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # http.server calls it by this name
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/drop":  # closes the connection without an answer
            self.close_connection = True
            return
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def failing_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_dropped_connection_and_an_http_error_fail_as_with_requests(failing_server: str) -> None:
    dropped = http_web3(failing_server + "/drop", 2, retries=False)
    with pytest.raises(ChainUnavailable, match="cannot reach the chain"), chain_errors(dropped):
        dropped.eth.get_block_number()
    erring = http_web3(failing_server, 2, retries=False)
    with pytest.raises(requests.HTTPError, match="500"):
        erring.eth.get_block_number()


def test_a_proxy_or_credentials_keep_the_requests_session(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pooled_session_for("https://node.example:8545") is not None
    assert pooled_session_for("https://user:secret@node.example:8545") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert pooled_session_for("https://node.example:8545") is None
    assert session_of(http_web3("https://node.example:8545")) is None  # web3's own requests Session
