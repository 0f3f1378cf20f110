"""Wallet sessions at a station imported from the CSMS, end to end: the driver opens a session on chain,
the daemon sends START_SESSION to the independent CPO platform, its CommandResult and Session start the
session on chain, its kWh reach the live data, the EV leaves, the CDR settles the session once with the
cost of the chain's tariff; a start the charge point rejects is refunded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core_client.cli.ocpi import EscrowRegistry
from core_client.daemon import Daemon
from core_client.ocpi.bridge import Bridge
from core_client.ocpi.models.enums import ModuleID
from ev_network.contracts import SessionState
from ev_network.pricing import price
from tests.ocpi.cpo import TOKEN_A, Cpo, cpo_platform
from tests.ocpi.harness import free_port, settings
from tools.harness.chain import TOKEN, Net
from tools.harness.core import Core, chain_events, funded_driver, open_session, running_core, until, wait_chain

DEPOSIT = 20 * TOKEN


@pytest.fixture
async def cpo(tmp_path: Path) -> AsyncIterator[Cpo]:
    async with cpo_platform(tmp_path) as platform:
        await platform.control("scenario", {"kwh_per_second": 5, "tick_ms": 200, "result_delay_ms": 50})
        yield platform


@pytest.fixture
async def core(tmp_path: Path, clean_chain: Net, keyfile: Path, cpo: Cpo) -> AsyncIterator[tuple[Core, int]]:
    net = clean_chain
    ocpi = settings(free_port(), versions_url=cpo.versions_url, token_a=TOKEN_A, pull_interval_s=3600)
    async with running_core(net, tmp_path, keyfile, {}, ocpi=ocpi) as core:
        bridge = Bridge(ocpi, core.daemon.settings.database)
        await bridge.register()
        registry = EscrowRegistry(net.escrow(net.operator), net.deployment)
        [line] = await bridge.import_evses(registry, ["EVSE-2"], False)  # T-ENERGY: 0.30/kWh + 19 % VAT
        station_id = int(line.split()[2])
        await until(lambda: "DE*EVP*E0002" in core.daemon.service.links, 10, "the station linked")
        await until(lambda: core.daemon.store.station_of("DE*EVP*E0002"), 20, "the station known to the store")
        yield core, station_id


async def test_a_wallet_session_through_the_csms_settles_once_at_the_tariff(core, cpo: Cpo) -> None:
    daemon, station_id = core[0].daemon, core[1]
    net = core[0].net
    driver = await funded_driver(net, 0)
    session_id = await open_session(net, driver, station_id, 1, DEPOSIT)
    await wait_chain(net, session_id, SessionState.ACTIVE, timeout=30)
    starts = [e for e in await cpo.control("log") if e["direction"] == "in" and "START_SESSION" in e["url"]]
    token = starts[0]["body"]["token"]
    assert token["type"] == "APP_USER" and token["country_code"] == "DE" and token["party_id"] == "EVN"
    ocpi_session = await until(lambda: _cpo_session(daemon), 10, "the CSMS's session")
    await until(lambda: (daemon.service.session(session_id).meter_last or 0) > 0, 15, "energy in the live data")
    await cpo.control("stop", {"session_id": ocpi_session})  # the EV leaves: the session completes, its CDR follows
    await wait_chain(net, session_id, SessionState.SETTLED, timeout=30)
    [cdr] = (await cpo.control("state"))["cdrs"]
    energy_wh = round(cdr["total_energy"] * 1000)
    [settled] = chain_events(net, "SessionSettled", session_id)
    tariff = net.escrow().get_tariff(net.escrow().get_station(station_id).tariff_id)
    assert settled.args["cost"] == price(tariff, energy_wh) and energy_wh > 0
    assert await cpo.violations() == []


async def test_a_start_the_charge_point_rejects_is_refunded(core, cpo: Cpo) -> None:
    net, station_id = core[0].net, core[1]
    await cpo.control("scenario", {"start": "reject"})
    driver = await funded_driver(net, 1)
    session_id = await open_session(net, driver, station_id, 1, DEPOSIT)
    await wait_chain(net, session_id, SessionState.CANCELLED, timeout=30)
    assert (await cpo.control("state"))["sessions"] == []


def _cpo_session(daemon: Daemon) -> str | None:
    """The id of the first Session the CSMS pushed to the daemon."""
    found = daemon.ocpi.mirror.all(ModuleID.SESSIONS)
    return found[0]["id"] if found else None
