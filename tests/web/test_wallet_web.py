"""The driver's web app (wallet.web) over HTTP, without a browser, on the test Anvil: requests without
the CSRF token change nothing, nor do forms of other sites (by the headers a browser sends), which sign
nobody out; errors come back as the wallet's one-line messages (chain down, balance too low, cancel
too early, with the time until it is allowed), and the account locks itself when idle. Cards (issue 20):
linked, listed with what their sessions committed, and revoked from the app, on chain."""

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

from ev_network.mandates import Mandates, format_grant, parse_grant, token_ref
from ev_network.session_ids import parse_session_id
from ev_network.units import format_time, format_wait, money
from ev_network.web import short_amount
from ev_network.web.server import HttpServer
from tools.devchain import free_port
from tools.harness.chain import TOKEN
from tools.harness.wallet import (
    PASSWORD,
    latest_time,
    nonce,
    operator_settle,
    operator_start,
    set_next_block_time,
    wallet_config,
)
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
        app = create_app(config, **options)
        server = HttpServer(app, "127.0.0.1", 0)
        await server.start()
        servers.append(server)
        client = WebClient(server.url)
        client.wallet = app.state.web
        return client

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


# what Chromium sends with a form posted, or a link followed, from a page of another site
FORM_OF_ANOTHER_SITE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Origin": "http://other.example"}
LINK_OF_ANOTHER_SITE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-User": "?1"}


async def test_forms_of_other_sites_are_refused_and_sign_nobody_out(net, tmp_path: Path, serve):
    client = await serve(wallet_config(net, tmp_path / "home"))
    await client.get("/")
    assert any("samesite=lax" in c.lower() for c in client.set_cookie)  # sent along when a link is followed
    await client.post("/account/create", {"password": PASSWORD, "confirm": PASSWORD})
    status, page = await client.get("/history", headers=LINK_OF_ANOTHER_SITE)
    assert status == 200 and "<h1>History</h1>" in page  # a link from elsewhere arrives signed in

    # refused before the session is read: even with the cookie and the token, and no new cookie
    older_browser = {"Origin": "http://other.example"}  # no Sec-Fetch-* headers: Origin decides
    for headers in (FORM_OF_ANOTHER_SITE, older_browser, {"Sec-Fetch-Site": "same-site"}):
        status, page = await client.post("/lock", {}, headers=headers)
        assert status == 403 and "sent from another site" in page and client.set_cookie == []
    assert len(client.wallet) == 1
    status, page = await client.get("/")
    assert 'id="balance"' in page

    # this site's own forms go through
    same_origin = {"Sec-Fetch-Site": "same-origin", "Origin": client.base}
    status, page = await client.post("/lock", {}, headers=same_origin)
    assert status == 200 and "locked: the key is gone from memory" in page and len(client.wallet) == 0


async def test_unlocking_again_locks_the_account_unlocked_before(net, tmp_path: Path, serve):
    client = await serve(wallet_config(net, tmp_path / "home"))
    await client.get("/")
    await client.post("/account/create", {"password": PASSWORD, "confirm": PASSWORD})
    await client.post("/account/create", {"password": PASSWORD, "confirm": PASSWORD})
    status, page = await client.post("/unlock", {"password": PASSWORD})
    assert status == 200 and 'id="balance"' in page
    assert len(client.wallet) == 1  # one browser session, one key in memory


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
    assert f"cancel possible in {format_wait(net.deployment.start_timeout)}, if" in page
    session_path = re.search(r"/sessions/0x[0-9a-f]{64}", page).group(0)
    status, page = await client.post(f"{session_path}/cancel", {})
    assert "cannot cancel session 1 yet: possible from" in page
    assert (await client.get("/history"))[1].count("badge requested") == 1


async def test_a_session_in_peoples_units_from_start_to_invoice(net, driver):
    """The session page leads with the charge point's name; waits in minutes and hours; no notice of a
    stop left above the settled result; the settled cost as on the invoice; history by name."""
    client, address = driver
    await client.get("/")
    await client.post("/topup", {"amount": "20"})
    charge_point = f"WEB-UNITS-{address[2:8]}"
    station = net.add_station(charge_point, 2)
    _, page = await client.post("/charge", {"station": str(station), "connector": "2", "deposit": "5"})
    assert f'<h1 id="station-name">{charge_point}</h1>' in page and "Session 1 · connector 2" in page
    assert "station #" not in page
    assert f"cancel possible in {format_wait(net.deployment.start_timeout)}, if" in page
    path = re.search(r"/sessions/0x[0-9a-f]{64}", page).group(0)
    session_id = parse_session_id(path.rsplit("/", 1)[1])

    operator_start(net, session_id)
    _, page = await client.get(path)
    reclaim_in = net.deployment.max_duration + net.deployment.reclaim_grace  # 25 h on the test chain
    assert f"reclaim possible in {format_wait(reclaim_in)} if never settled" in page and " s if" not in page
    _, page = await client.post(f"{path}/stop", {})
    assert 'class="message notice"' not in page  # the live part says it, and goes when the session ends
    assert "stop requested: waiting for the charge point and the settlement" in page

    operator_settle(net, session_id, 189)  # 0.50 + 0.189 kWh x 0.35 = 0.56615
    _, page = await client.get(path)
    cost = re.search(r'id="cost" title="([0-9.]+)">([0-9.]+)<', page).groups()
    assert cost == ("0.56615", "0.5662") and "stop requested" not in page
    _, invoice = await client.get(f"{path}/invoice")
    assert re.search(r'title="0.56615 EVE" id="invoice-total">0.5662 EVE<', invoice)
    _, history = await client.get("/history")
    assert f">{charge_point}</a>" in history and "Session 1 · connector 2" in history
    assert not re.search(r"#\d+/\d+", history)


@pytest.mark.issue(20)
async def test_a_card_is_linked_listed_with_what_it_committed_and_revoked_in_the_app_on_chain(net, driver):
    """The same wallet code as ``ev-wallet card``: the mandate is on chain with the caps typed in, the page
    shows what the operator's sessions committed under it, Revoke revokes it at once (not without the CSRF
    token), and a card linked twice or with bad limits is one clear line."""
    client, address = driver
    await client.get("/")
    await client.post("/topup", {"amount": "100"})
    station = net.add_station(f"WEB-CARD-{address[2:8]}", 1)
    _, page = await client.get("/cards")
    assert "no cards linked yet" in page and f'<option value="{net.operator.address}">' in page
    uid = "04a2b3c4d5e6f7"
    card = {"uid": uid, "label": "blue card", "operator": net.operator.address, "cap": "20", "total": "50"}
    status, page = await client.post("/cards/add", {**card, "days": "30"})
    assert status == 200 and f"card {uid.upper()} linked: mandate" in page
    mandate_id, salt = parse_grant(re.search(r"its grant: (evcard:[0-9a-fx:]+)", page).group(1))
    mandates = Mandates(net.w3, net.deployment)
    mandate = mandates.get(mandate_id)
    assert (mandate.payer, mandate.cap_per_session, mandate.total) == (address, 20 * TOKEN, 50 * TOKEN)
    assert not mandate.revoked and "blue card" in page and 'class="badge active"' in page

    operator = Mandates(net.w3, net.deployment, net.sender(net.operator))
    await asyncio.to_thread(operator.open_session, mandate_id, token_ref(salt, uid), station, 1, 15 * TOKEN, 7, 0)
    _, page = await client.get("/cards")
    row = re.search(rf'<tr id="card-{uid.upper()}">.*?</tr>', page, re.S).group(0)
    assert "15.00 of 50.00" in row and "up to 20.00 per session" in row
    assert f'<code class="grant">{format_grant(mandate_id, salt)}</code>' in row  # to give it again

    _, page = await client.post("/cards/add", {**card, "days": "30"})
    assert f"card {uid.upper()} is already linked (remove it first)" in page
    _, page = await client.post("/cards/add", {**card, "uid": "04FF", "cap": "60", "days": "30"})
    assert "the cap per session must be above zero and at most the total" in page

    status, _ = await client.post("/cards/remove", {"uid": uid}, csrf=False)
    assert status == 403 and not mandates.get(mandate_id).revoked
    await client.get("/cards")
    status, page = await client.post("/cards/remove", {"uid": uid})
    assert status == 200 and f"mandate {mandate_id} revoked" in page and "no cards linked yet" in page
    assert mandates.get(mandate_id).revoked


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


def test_money_waits_and_times_as_people_read_them():
    assert money(566_150_000_000_000_000, 18) == "0.5662"  # half up, to 4 decimals
    assert money(475_756_302_521_008_403, 18) == "0.4758"  # not 0.475756302521008403
    assert money(2 * 10**18, 18) == "2.00" and money(-66_150_000_000_000_000, 18) == "-0.0662"
    waits = [format_wait(s) for s in (0, 45, 59.5, 300, 301, 5400, 89_993)]
    assert waits == ["0 s", "45 s", "1 min", "5 min", "6 min", "1 h 30 min", "25 h"]  # rounded up: never too soon
    assert format_time(1_796_558_400) == "2026-12-06 12:00:00 UTC"


def test_idle_accounts_leave_memory_even_if_their_browser_never_comes_back(net, tmp_path: Path):
    state = WebWallet(wallet_config(net, tmp_path / "home"), idle_lock_s=0.3)
    address = state.create(PASSWORD, PASSWORD)
    abandoned = state.unlock(address, PASSWORD)
    time.sleep(0.4)
    active = state.unlock(address, PASSWORD)
    assert state.get(active) is not None
    assert len(state) == 1 and state.get(abandoned) is None
