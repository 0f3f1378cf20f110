"""A session the operator holds is HELD in the driver's history, with why and when the deposit comes
back at the latest, in `ev-wallet history` and on the web app's History page, as `ev-wallet status` and
the session page say it (the Core Client's live data: the chain alone still says the session is active)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from ev_network.web.server import HttpServer
from tools.harness.chain import TOKEN
from tools.harness.held import BEYOND_THE_CONNECTOR, held_session_live
from tools.harness.wallet import PASSWORD, Cli, funded_wallet, operator_start, wallet_config
from tools.harness.web import WebClient
from wallet.web import create_app

CP = "CP-HISTORY-HELD"


def held_on_chain(net, home: Path) -> tuple[str, tuple[int, str], int]:
    """A wallet home whose account has a session the operator started on chain: (address, station, session)."""
    wallet = funded_wallet(net, home, 10 * TOKEN)
    station = net.add_station(CP, 2)
    session_id = wallet.open_session(station, 1, 5 * TOKEN)
    operator_start(net, session_id, meter_start=1000)
    return wallet.address, (station, CP), session_id


async def test_ev_wallet_history_says_a_held_session_is_held_and_why(clean_chain, tmp_path: Path):
    net = clean_chain
    address, station, session_id = held_on_chain(net, tmp_path / "home")
    cli = Cli(net, tmp_path / "home")
    async with held_session_live(tmp_path / "core.sqlite", station, session_id, address) as live_url:
        shown = (await asyncio.to_thread(cli, "history", "--live-url", live_url)).stdout
        [line] = [line for line in shown.splitlines() if line.startswith("HELD 1: ")]
        assert BEYOND_THE_CONNECTOR in line and "the deposit comes back at the latest from" in line, shown
        assert re.search(r"│ HELD\s*│", shown), shown
        [entry] = (await asyncio.to_thread(cli.json, "history", "--live-url", live_url))["sessions"]
        assert entry["state"] == "active" and BEYOND_THE_CONNECTOR in entry["held"]
    assert "HELD" not in cli("history").stdout  # without the live data: the chain's state alone


async def test_the_history_page_says_a_held_session_is_held_and_why(clean_chain, tmp_path: Path):
    net = clean_chain
    config = wallet_config(net, tmp_path / "home")
    address, station, session_id = held_on_chain(net, config.home)
    async with held_session_live(tmp_path / "core.sqlite", station, session_id, address) as live_url:
        server = HttpServer(create_app(config, live_url=live_url), "127.0.0.1", 0)
        await server.start()
        try:
            client = WebClient(server.url)
            await client.get("/")
            status, page = await client.post("/unlock", {"account": address, "password": PASSWORD})
            assert status == 200 and 'id="balance"' in page, page
            status, page = await client.get("/history")
        finally:
            await server.stop()
    assert status == 200
    held = re.search(r'<div class="muted" id="held-1">([^<]*)</div>', page)
    assert held and BEYOND_THE_CONNECTOR in held[1] and "the deposit comes back at the latest from" in held[1], page
    assert '<span class="badge held">held</span>' in page
