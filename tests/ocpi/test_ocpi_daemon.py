"""The daemon in OCPI mode: it serves our endpoints for the CSMS (the independent CPO platform), the
registration runs against it, EVSE statuses the CSMS pushes become the public availability of the
stations imported from it, the tariffs it pushes become their chain tariffs (or are refused by name), and
/health says how the bridge stands."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from core_client.chain.station_registry import EscrowRegistry
from core_client.ocpi.bridge import Bridge
from tools.harness.chain import TOKEN, Net
from tools.harness.core import running_core, until
from tools.harness.ocpi.our_emsp import free_port, settings
from tools.harness.ocpi.peers import TOKEN_A, cpo_platform


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


@pytest.mark.issue(18)
async def test_a_pushed_tariff_becomes_the_stations_chain_tariff_or_is_refused_by_name(
    tmp_path: Path, clean_chain: Net, keyfile: Path, caplog: pytest.LogCaptureFixture
) -> None:
    net = clean_chain
    async with cpo_platform(tmp_path) as cpo:
        ocpi = settings(free_port(), versions_url=cpo.versions_url, token_a=TOKEN_A)
        async with running_core(net, tmp_path, keyfile, {}, ocpi=ocpi) as core:
            bridge = Bridge(ocpi, core.daemon.settings.database)
            await bridge.register()
            registry = EscrowRegistry(net.escrow(net.operator), net.deployment)
            [imported] = await bridge.import_evses(registry, ["EVSE-2"], False)
            station = int(imported.split("station ")[1].split()[0])
            assert registry.station_tariff(station).price_per_kwh == 357 * TOKEN // 1000  # 0.30 EUR + 19% VAT

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
