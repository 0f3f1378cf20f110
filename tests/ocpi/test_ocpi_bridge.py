"""``core-client ocpi`` at work against the independent CPO platform (tests/interop/ocpi_cpo.js) and a
real chain: register (our endpoints served by the command, or by the running daemon), status,
stations (each EVSE and what it maps to), import (stations on chain with converted tariffs, a VAT rate
that differs from the operator's refused)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core_client.chain.station_registry import EscrowRegistry
from core_client.ocpi.bridge import Bridge
from core_client.ocpi.errors import OcpiError
from core_client.ocpi.inbox import RecordingInbox
from core_client.ocpi.server import OcpiServer
from ev_network.operator_profile import OperatorProfiles, Profile
from ev_network.pricing import Tariff
from ev_network.web.server import HttpServer
from tools.harness.ocpi.our_emsp import free_port, settings
from tools.harness.ocpi.peers import TOKEN_A, Cpo, cpo_platform

E18 = 10**18


@pytest.fixture
async def cpo(tmp_path: Path) -> AsyncIterator[Cpo]:
    async with cpo_platform(tmp_path, "--max-limit", "4") as platform:
        yield platform


@pytest.fixture
def bridge(tmp_path: Path, cpo: Cpo) -> Bridge:
    return Bridge(settings(free_port(), versions_url=cpo.versions_url, token_a=TOKEN_A), tmp_path / "core.sqlite")


async def test_register_serves_our_endpoints_for_the_handshake_then_status(bridge: Bridge, cpo: Cpo) -> None:
    assert bridge.status() == [f"not registered: `core-client ocpi register` connects to {cpo.versions_url}"]
    lines = await bridge.register()
    assert lines[0] == f"registered with the CSMS at {cpo.versions_url} as eMSP DE/EVN (OCPI 2.2.1)"
    assert lines[1] == "the CSMS's parties: DE/EVP"
    assert "served by this command" in lines[2]
    status = bridge.status()
    assert status[0].startswith(f"registered with {cpo.versions_url} since ")
    assert "commands (RECEIVER)" in status[2] and status[-1] == "stations imported: 0"
    assert oct(bridge.store.path.stat().st_mode & 0o777) == "0o600"
    assert not any(TOKEN_A in line for line in lines + status)


async def test_register_with_the_daemon_already_serving(bridge: Bridge) -> None:
    mirror = bridge.mirror()
    daemon = HttpServer(
        OcpiServer(bridge.settings, bridge.store, mirror, RecordingInbox()).app(), "127.0.0.1", bridge.settings.port
    )
    await daemon.start()
    try:
        lines = await bridge.register()
    finally:
        await daemon.stop()
        mirror.close()
    assert "served by the running daemon" in lines[2]
    assert "registered" in bridge.status()[0]


async def test_stations_map_each_evse(bridge: Bridge) -> None:
    await bridge.register()
    lines = {line.split()[0]: line for line in await bridge.stations(18)}
    assert len(lines) == 11
    assert lines["LOC-1/EVSE-1"] == (
        "LOC-1/EVSE-1  DE*EVP*E0001  AVAILABLE  -> would register as DE*EVP*E0001, 1 connector, "
        "0.2975/kWh + 0.595/session + 1.428/h (incl. 19% VAT, tariff DE/EVP/T-SIMPLE; its time fee counts the whole "
        "session, start to the CDR's end, idle time included (OCPI TIME: charging))"
    )  # OCPI's TIME counts charging time, the chain's time fee the session: said where the tariff is shown
    assert "-> cannot import: tariff DE/EVP/T-TIME-OF-DAY: element 1: time of day restrictions" in lines["LOC-2/EVSE-5"]
    assert "PARKING_TIME" in lines["LOC-2/EVSE-6"]
    assert "ENERGY step_size 500" in lines["LOC-3/EVSE-7"]
    assert "energy restrictions" in lines["LOC-3/EVSE-8"] and "several ENERGY" in lines["LOC-3/EVSE-8"]
    assert "power restrictions" in lines["LOC-3/EVSE-9"]
    assert "OUTOFORDER  -> would register" in lines["LOC-3/EVSE-11"]


async def test_stations_before_registering_is_one_clear_error(bridge: Bridge) -> None:
    with pytest.raises(OcpiError, match="not registered with the CSMS: run `core-client ocpi register`"):
        await bridge.stations(18)


async def test_import_registers_stations_with_converted_tariffs(bridge: Bridge, clean_chain) -> None:
    net = clean_chain
    registry = EscrowRegistry(net.escrow(net.operator), net.deployment)
    await bridge.register()
    lines = await bridge.import_evses(registry, ["DE*EVP*E0001", "loc-2/evse-4", "EVSE-6"], everything=False)
    assert lines[0].startswith("LOC-1/EVSE-1: station ") and "registered as DE*EVP*E0001" in lines[0]
    assert lines[1].startswith("LOC-2/EVSE-4: station ")
    assert lines[2].startswith("LOC-2/EVSE-6: not imported: tariff DE/EVP/T-PARKING: element 1: PARKING_TIME")
    station_id = int(lines[0].split()[2])
    station = net.escrow().get_station(station_id)
    assert station.charge_point_id == "DE*EVP*E0001" and station.connectors == 1
    assert net.escrow().get_tariff(station.tariff_id) == Tariff(
        price_per_kwh=2975 * E18 // 10000, session_fee=595 * E18 // 1000, time_fee_per_hour=1428 * E18 // 1000
    )
    assert (await bridge.import_evses(registry, ["EVSE-1"], everything=False)) == [
        f"LOC-1/EVSE-1: already station {station_id}"
    ]
    stations = {line.split()[0]: line for line in await bridge.stations(18)}
    assert stations["LOC-1/EVSE-1"].endswith(f"-> station {station_id} (DE*EVP*E0001)")
    assert bridge.status()[-1] == "stations imported: 2"
    with pytest.raises(OcpiError, match="no EVSE called NOPE"):
        await bridge.import_evses(registry, ["NOPE"], everything=False)


async def test_import_refuses_a_vat_rate_other_than_the_operators(bridge: Bridge, clean_chain) -> None:
    net = clean_chain
    profiles = OperatorProfiles(net.w3, net.deployment.operator_profile, net.sender(net.operator))
    profiles.set_profile(Profile("Volt Charging GmbH", "Street 1\n10115 Berlin", "DE123", 2100))
    await bridge.register()
    lines = await bridge.import_evses(EscrowRegistry(net.escrow(net.operator), net.deployment), [], everything=True)
    assert lines and all("differs from the 21% of your operator profile" in line for line in lines)
