"""The daemon in OCPI mode: it serves our endpoints for the CSMS (the independent CPO platform), the
registration runs against it, EVSE statuses the CSMS pushes become the public availability of the
stations imported from it, the tariffs it pushes become their chain tariffs (or are refused by name), and
/health says how the bridge stands."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from core_client.chain.station_registry import EscrowRegistry
from core_client.ocpi.bridge import Bridge
from tools.harness.chain import TOKEN, Net
from tools.harness.core import running_core, until
from tools.harness.ocpi.our_emsp import free_port, settings
from tools.harness.ocpi.peers import TOKEN_A, Cpo, cpo_platform


async def test_daemon_serves_ocpi_and_feeds_availability(
    tmp_path: Path, clean_chain: Net, keyfile: Path, db_location: Path | str
) -> None:
    """On either engine: with a postgresql:// database the mirror is in it, the tokens in registration_file."""
    net = clean_chain
    async with cpo_platform(tmp_path) as cpo:
        ocpi = settings(
            free_port(), versions_url=cpo.versions_url, token_a=TOKEN_A, registration_file=tmp_path / "ocpi.json"
        )
        async with running_core(net, tmp_path, keyfile, {}, ocpi=ocpi, database=db_location) as core:
            daemon = core.daemon
            assert daemon.health()["ocpi"]["registered"] is False
            bridge = Bridge(ocpi, daemon.settings.database)
            lines = await bridge.register()
            assert "served by the running daemon" in lines[2]
            [imported] = await bridge.import_evses(
                EscrowRegistry(net.escrow(net.operator), net.deployment), ["EVSE-2"], False
            )
            assert imported.startswith("LOC-1/EVSE-2: station ")
            health = daemon.health()["ocpi"]
            assert health["registered"] and health["csms_parties"] == ["DE/EVP"] and health["stations_imported"] == 1

            live = daemon.service.live
            await cpo.control("status", {"location_id": "LOC-1", "evse_uid": "EVSE-2", "status": "CHARGING"})
            await until(lambda: live.connector_status("DE*EVP*E0002", 1) == "Charging", 10, "status CHARGING")
            await cpo.control("status", {"location_id": "LOC-1", "evse_uid": "EVSE-2", "status": "OUTOFORDER"})
            await until(lambda: live.connector_status("DE*EVP*E0002", 1) == "Faulted", 10, "status OUTOFORDER")
            await cpo.control(
                "status", {"location_id": "LOC-1", "evse_uid": "EVSE-3", "status": "CHARGING"}
            )  # not imported
            assert live.connector_status("DE*EVP*E0003", 1) is None
            assert await cpo.violations() == []


def energy_tariff(price: float, *extra_components: dict[str, Any]) -> dict[str, Any]:
    """The CSMS's T-ENERGY (that of EVSE-2) at ``price`` EUR/kWh + 19% VAT, as the CSMS pushes it."""
    components = [{"type": "ENERGY", "price": price, "vat": 19.0, "step_size": 1}, *extra_components]
    return {
        "country_code": "DE",
        "party_id": "EVP",
        "id": "T-ENERGY",
        "currency": "EUR",
        "elements": [{"price_components": components}],
        "last_updated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@asynccontextmanager
async def evse2_imported(tmp_path: Path, net: Net, keyfile: Path) -> AsyncIterator[tuple[Cpo, EscrowRegistry, int]]:
    """The daemon registered with the stand-in CPO and its EVSE-2 imported as a station (T-ENERGY: 0.30 EUR/kWh +
    19% VAT on chain): the platform, the chain's station registry and the station's id."""
    async with cpo_platform(tmp_path) as cpo:
        ocpi = settings(free_port(), versions_url=cpo.versions_url, token_a=TOKEN_A)
        async with running_core(net, tmp_path, keyfile, {}, ocpi=ocpi) as core:
            bridge = Bridge(ocpi, core.daemon.settings.database)
            await bridge.register()
            registry = EscrowRegistry(net.escrow(net.operator), net.deployment)
            [imported] = await bridge.import_evses(registry, ["EVSE-2"], False)
            station = int(imported.split("station ")[1].split()[0])
            assert registry.station_tariff(station).price_per_kwh == 357 * TOKEN // 1000
            yield cpo, registry, station


@pytest.mark.issue(18)
async def test_a_pushed_tariff_becomes_the_stations_chain_tariff_or_is_refused_by_name(
    tmp_path: Path, clean_chain: Net, keyfile: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with evse2_imported(tmp_path, clean_chain, keyfile) as (cpo, registry, station):

        def price() -> int:
            return registry.station_tariff(station).price_per_kwh

        await cpo.control("push", {"tariff": energy_tariff(0.4)})
        await until(lambda: price() == 476 * TOKEN // 1000, 20, "the pushed tariff on chain (0.40 + 19%)")
        parking = {"type": "PARKING_TIME", "price": 5.0, "vat": 19.0, "step_size": 300}
        with caplog.at_level(logging.WARNING, "core_client.ocpi"):
            await cpo.control("push", {"tariff": energy_tariff(0.5, parking)})
            refusal = await until(
                lambda: next((r.getMessage() for r in caplog.records if "not applied" in r.getMessage()), None),
                20,
                "the refusal of a tariff with parking time",
            )
        assert f"station {station}" in refusal and "PARKING_TIME" in refusal
        assert price() == 476 * TOKEN // 1000  # kept, not approximated
        assert await cpo.violations() == []


@pytest.mark.issue(18)
async def test_a_location_push_re_pointing_a_connector_to_another_tariff_is_followed_on_chain(
    tmp_path: Path, clean_chain: Net, keyfile: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The CSMS PATCHes (or PUTs) an imported EVSE's Connector with other tariff_ids: the station's chain tariff
    becomes the new tariff's conversion; one the chain cannot express is refused by name and the tariff kept; one
    the CSMS has not pushed yet applies when it does."""
    async with evse2_imported(tmp_path, clean_chain, keyfile) as (cpo, registry, station):

        def tariff() -> tuple[int, int, int]:
            t = registry.station_tariff(station)
            return t.price_per_kwh, t.session_fee, t.time_fee_per_hour

        def warned(part: str) -> Any:
            return lambda: next((r.getMessage() for r in caplog.records if part in r.getMessage()), None)

        evse2 = {"location_id": "LOC-1", "evse_uid": "EVSE-2", "connector_id": "1"}
        await cpo.control("connector", {**evse2, "tariff_ids": ["T-FLAT"]})  # a PATCH of the Connector
        await until(lambda: tariff() == (0, 238 * TOKEN // 100, 0), 20, "T-FLAT on chain (2.00 + 19% per session)")

        with caplog.at_level(logging.WARNING, "core_client.ocpi"):
            await cpo.control("connector", {**evse2, "tariff_ids": ["T-PARKING"], "method": "PUT"})
            refusal = await until(warned("not applied"), 20, "the refusal of T-PARKING")
            assert f"station {station}" in refusal and "T-PARKING" in refusal and "PARKING_TIME" in refusal
            assert tariff() == (0, 238 * TOKEN // 100, 0)  # kept, not approximated
            await cpo.control("push", {"tariff": energy_tariff(0.4)})  # T-ENERGY no longer prices EVSE-2
            await cpo.control("connector", {**evse2, "tariff_ids": ["T-NEW"]})
            await until(warned("T-NEW of connector 1 is not among"), 20, "a tariff the CSMS has not pushed yet")
        assert tariff() == (0, 238 * TOKEN // 100, 0)
        await cpo.control("push", {"tariff": {**energy_tariff(0.5), "id": "T-NEW"}})
        await until(lambda: tariff() == (595 * TOKEN // 1000, 0, 0), 20, "T-NEW on chain once pushed (0.50 + 19%)")
        assert await cpo.violations() == []
