"""The driver's web app (wallet.web) over HTTP, without a browser, on the test Anvil: requests without
the CSRF token change nothing, errors come back as the wallet's one-line messages (chain down, balance
too low, cancel too early, with the time until it is allowed), and the account locks itself when idle."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ev_network.web import short_amount
from ev_network.web.server import HttpServer
from tools.devchain import free_port
from tools.harness.wallet import PASSWORD, latest_time, nonce, set_next_block_time, wallet_config
from tools.harness.web import WebClient
from wallet.config import WalletConfig
from wallet.keystore import Keystore
from wallet.web import create_app
from wallet.web.state import WebWallet


@pytest.fixture
async def serve():
    """serve(config, **options): the web app on a free port, stopped after the test; its WebClient."""
    servers: list[HttpServer] = []

    async def start(config: WalletConfig, **options) -> WebClient:
        server = HttpServer(create_app(config, **options), "127.0.0.1", 0)
        await server.start()
        servers.append(server)
        return WebClient(server.url)

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def driver(clean_chain, tmp_path: Path, serve) -> AsyncIterator[tuple[WebClient, str]]:
    """A fresh account created (and unlocked) in the web app, with gas but no tokens; and its address.
    The chain's clock is set to the wall clock (earlier tests move it), and reverted after the test."""
    net = clean_chain
    set_next_block_time(net, max(latest_time(net), int(time.time())) + 1)
    net.w3.provider.make_request("evm_mine", [])
    client = await serve(wallet_config(net, tmp_path / "home"))
    await client.get("/")
    status, page = await client.post("/account/create", {"password": PASSWORD, "confirm": PASSWORD})
    assert status == 200 and "created and unlocked" in page
    address = re.search(r'id="address">(0x[0-9a-fA-F]{40})<', page).group(1)
    yield client, address


async def test_posts_without_the_csrf_token_change_nothing(net, tmp_path: Path, serve):
    config = wallet_config(net, tmp_path / "home")
    client = await serve(config)
    await client.get("/")
    status, page = await client.post("/account/create", {"password": PASSWORD, "confirm": PASSWORD}, csrf=False)
    assert status == 403 and "came from another site" in page
    client.csrf = "forged"
    assert (await client.post("/account/create", {"password": PASSWORD, "confirm": PASSWORD}))[0] == 403
    assert Keystore(config).accounts() == []


async def test_a_chain_that_is_down_is_named_in_one_line(net, tmp_path: Path, serve):
    dead = f"http://127.0.0.1:{free_port()}"
    config = WalletConfig.resolve(home=tmp_path / "home", rpc_url=dead, deployment_file=net.deployment_file)
    client = await serve(config)
    status, page = await client.get("/stations")
    assert status == 503
    assert f"cannot reach the chain at {dead}: is the node running?" in page


async def test_a_deposit_above_the_balance_is_refused_before_any_transaction(net, driver):
    client, address = driver
    await client.get("/stations")
    station = net.add_station(f"WEB-BAL-{address[2:8]}", 2)
    sent = nonce(net, address)
    status, page = await client.post("/charge", {"station": str(station), "connector": "1", "deposit": "5"})
    assert status == 200 and "is more than the balance 0.00 EVE" in page and "top up first" in page
    assert nonce(net, address) == sent


async def test_cancel_before_the_start_timeout_says_when_it_is_allowed(net, driver):
    client, address = driver
    await client.get("/")
    assert "topped up 20.00" in (await client.post("/topup", {"amount": "20"}))[1]
    station = net.add_station(f"WEB-CAN-{address[2:8]}", 2)  # no Core Client: the session never starts
    status, page = await client.post("/charge", {"station": str(station), "connector": "1", "deposit": "5"})
    assert status == 200 and 'Phase <span class="badge requested"' in page
    assert re.search(r"cancel possible in \d+ s", page)
    session_path = re.search(r"/sessions/0x[0-9a-f]{64}", page).group(0)
    status, page = await client.post(f"{session_path}/cancel", {})
    assert "cannot cancel session 1 yet: possible from" in page
    assert (await client.get("/history"))[1].count("badge requested") == 1


async def test_the_account_locks_itself_when_idle(net, tmp_path: Path, serve):
    client = await serve(wallet_config(net, tmp_path / "home"), idle_lock_s=0.5)
    await client.get("/")
    _, page = await client.post("/account/create", {"password": PASSWORD, "confirm": PASSWORD})
    assert 'id="balance"' in page and PASSWORD not in page
    await asyncio.sleep(0.7)
    _, page = await client.get("/history")
    assert "unlock your account first" in page and 'id="unlock"' in page
    assert (await client.get("/sessions/0x" + "00" * 32 + "/events"))[0] == 401
    _, page = await client.post("/unlock", {"password": "wrong password!"})
    assert "wrong password for keystore" in page
    status, page = await client.post("/unlock", {"password": PASSWORD, "next": "//elsewhere.example/"})
    assert status == 200 and 'id="balance"' in page  # back on this site, unlocked


def test_ev_wallet_web_serves_on_localhost(net, tmp_path: Path):
    port = free_port()
    env = {**os.environ, "EVN_WALLET_HOME": str(tmp_path / "home"), "EVN_RPC_URL": net.rpc_url}
    command = [sys.executable, "-m", "wallet.cli", "web", "--port", str(port), "--deployment", str(net.deployment_file)]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        try:
            assert process.stdout.readline().strip() == f"EV Wallet on http://127.0.0.1:{port}/ (Ctrl-C stops)"
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                        page = response.read().decode()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "ev-wallet web did not answer"
                    time.sleep(0.2)
            assert 'id="create"' in page and "/static/htmx.min.js" in page
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/htmx.min.js", timeout=2) as response:
                assert b"htmx" in response.read(200)
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(10) == 0


def test_figures_round_amounts_down_for_small_screens():
    assert short_amount(1_075_416_666_666_666_666, 18) == "1.0754"
    assert short_amount(2 * 10**18, 18) == "2.00"
    assert short_amount(1_234_567, 6) == "1.2345"
    assert short_amount(1_234, 2) == "12.34"


def test_idle_accounts_leave_memory_even_if_their_browser_never_comes_back(net, tmp_path: Path):
    state = WebWallet(wallet_config(net, tmp_path / "home"), idle_lock_s=0.3)
    address = state.create(PASSWORD, PASSWORD)
    abandoned = state.unlock(address, PASSWORD)
    time.sleep(0.4)
    active = state.unlock(address, PASSWORD)
    assert state.get(active) is not None
    assert len(state) == 1 and state.get(abandoned) is None
