"""The daemon in OCPI mode, registered with the stand-in CPO platform, with one of its EVSEs imported as a
station (for the wallet-session tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from core_client.chain.station_registry import EscrowRegistry
from core_client.ocpi.bridge import Bridge
from tools.harness.core import Core, running_core, until
from tools.harness.ocpi.our_emsp import free_port, settings
from tools.harness.ocpi.peers import TOKEN_A, Cpo


@asynccontextmanager
async def bridged_station(
    net: Any, tmp_path: Path, keyfile: Path, cpo: Cpo, evse: str, **ocpi_fields: Any
) -> AsyncIterator[tuple[Core, int, str]]:
    """The running daemon, the station id EVSE ``evse`` was imported as, and the import's line."""
    ocpi = settings(free_port(), versions_url=cpo.versions_url, token_a=TOKEN_A, pull_interval_s=3600, **ocpi_fields)
    async with running_core(net, tmp_path, keyfile, {}, ocpi=ocpi) as core:
        bridge = Bridge(ocpi, core.daemon.settings.database)
        await bridge.register()
        registry = EscrowRegistry(net.escrow(net.operator), net.deployment)
        [line] = await bridge.import_evses(registry, [evse], False)
        words = line.split()  # LOC/EVSE: station N registered as CHARGE-POINT-ID, ...
        station_id, charge_point_id = int(words[2]), words[5].rstrip(",")
        await until(lambda: charge_point_id in core.daemon.service.links, 10, "the station linked")
        await until(lambda: core.daemon.store.station_of(charge_point_id), 20, "the station known to the store")
        yield core, station_id, line
