"""The daemon in OCPI mode: it serves our endpoints for the CSMS (the independent CPO platform), the
registration runs against it, EVSE statuses the CSMS pushes become the public availability of the
stations imported from it, and /health says how the bridge stands."""

from __future__ import annotations

from pathlib import Path

from core_client.cli.ocpi import EscrowRegistry
from core_client.ocpi.bridge import Bridge
from tools.harness.chain import Net
from tools.harness.core import running_core, until
from tools.harness.ocpi.our_emsp import free_port, settings
from tools.harness.ocpi.peers import TOKEN_A, cpo_platform


async def test_daemon_serves_ocpi_and_feeds_availability(tmp_path: Path, clean_chain: Net, keyfile: Path) -> None:
    net = clean_chain
    async with cpo_platform(tmp_path) as cpo:
        ocpi = settings(free_port(), versions_url=cpo.versions_url, token_a=TOKEN_A)
        async with running_core(net, tmp_path, keyfile, {}, ocpi=ocpi) as core:
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
