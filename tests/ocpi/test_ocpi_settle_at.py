"""A wallet session at an OCPI station with a TIME tariff settles at its CDR's end_date_time (settleAt), not
when the CDR arrives: the independent CPO platform POSTs the CDR seconds after the session ended, and the
chain bills the time fee from the session's start on chain until the CDR's end, exactly."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from core_client.ocpi.models.enums import ModuleID
from ev_network.contracts import SessionState
from ev_network.pricing import price
from tools.harness.chain import TOKEN, Net
from tools.harness.contracts import latest_timestamp
from tools.harness.core import Core, chain_events, funded_driver, open_session, until, wait_chain
from tools.harness.ocpi.bridged import bridged_station
from tools.harness.ocpi.peers import Cpo, cpo_platform

CDR_DELAY_S = 4  # the CDR is POSTed this long after the session ended


@pytest.fixture
async def cpo(tmp_path: Path) -> AsyncIterator[Cpo]:
    async with cpo_platform(tmp_path) as platform:
        scenario = {"kwh_per_second": 5, "tick_ms": 200, "result_delay_ms": 50, "cdr_delay_ms": CDR_DELAY_S * 1000}
        await platform.control("scenario", scenario)
        yield platform


@pytest.fixture
async def core(tmp_path: Path, clean_chain: Net, keyfile: Path, cpo: Cpo) -> AsyncIterator[tuple[Core, int]]:
    lag = int(time.time()) - latest_timestamp(clean_chain.w3)  # a reverted snapshot leaves the chain's clock behind
    if lag > 0:  # the CSMS's clock (this machine's) and the chain's agree, as on a live network
        clean_chain.time_travel(lag)
    async with bridged_station(clean_chain, tmp_path, keyfile, cpo, "EVSE-4") as (core, station_id, line):  # T-TIME
        assert "its time fee counts the whole session" in line  # said at import: OCPI TIME is charging time
        yield core, station_id


@pytest.mark.parametrize("key", ["known", "looked up"])
async def test_a_late_cdr_bills_the_time_until_its_end_not_until_it_came(
    core, cpo: Cpo, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Also when the station's meter key is not known yet as the CDR comes (the chain was slow when the
    station linked): the stop is kept with the CDR's end, and settled with it once the key is read (was:
    plain settle, billed until its block)."""
    daemon, station_id = core[0].daemon, core[1]
    net = core[0].net
    tariff = net.escrow().get_tariff(net.escrow().get_station(station_id).tariff_id)
    assert (tariff.time_fee_per_hour, tariff.price_per_kwh, tariff.session_fee) == (238 * TOKEN // 100, 0, 0)
    session_id = await open_session(net, await funded_driver(net, 5), station_id, 1, 20 * TOKEN)
    await wait_chain(net, session_id, SessionState.ACTIVE, timeout=30)
    found = await until(lambda: daemon.ocpi.mirror.all(ModuleID.SESSIONS), 10, "the CSMS's session")
    await until(lambda: (daemon.service.session(session_id).meter_last or 0) > 0, 15, "energy in the live data")
    if key == "looked up":
        daemon.service.meter_keys.pop(station_id)  # as before the first read: to be read before the settle
    await cpo.control("stop", {"session_id": found[0]["id"]})  # the EV leaves; its CDR comes CDR_DELAY_S later
    await wait_chain(net, session_id, SessionState.SETTLED, timeout=40)
    waited = f"waiting for station {station_id}'s meter key on chain to settle it"
    assert (waited in caplog.text) == (key == "looked up")
    [cdr] = (await cpo.control("state"))["cdrs"]
    ended = int(datetime.fromisoformat(cdr["end_date_time"].replace("Z", "+00:00")).timestamp())
    [settled] = chain_events(net, "SessionSettled", session_id)
    started, settle_block = settled.args["startedAt"], net.w3.eth.get_block(settled.block_number)["timestamp"]
    assert settled.args["endedAt"] == max(ended, started)  # the CDR's end (not before the start on chain)
    assert settle_block - settled.args["endedAt"] >= CDR_DELAY_S  # settled after the CDR came, billed until its end
    energy_wh = settled.args["meterStop"] - settled.args["meterStart"]
    assert energy_wh == round(cdr["total_energy"] * 1000) > 0
    cost = price(tariff, energy_wh, settled.args["endedAt"] - started)
    assert settled.args["cost"] == cost < price(tariff, energy_wh, settle_block - started)
    assert settled.args["refund"] == 20 * TOKEN - cost
    assert await cpo.violations() == []
