"""The CPO interface inside the daemon (``[ocpi_cpo]``): our CPO endpoints served on host:port, our
stations as the daemon knows them (:class:`DaemonStations`: the store's stations, their chain tariffs, the
connectors' latest OCPP statuses), each connector's status change PATCHed to the eMSPs, and what
``/health`` says about the registered eMSPs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from core_client.ocpi.cpo.catalog import OurStation
from core_client.ocpi.cpo.modules import StatusPushes
from core_client.ocpi.cpo.peers import PeerStore
from core_client.ocpi.cpo.roaming import Roaming
from core_client.ocpi.cpo.server import CpoServer
from core_client.ocpi.cpo.session_pushes import SessionPushes
from core_client.ocpi.cpo.settings import CpoSettings
from core_client.ocpi.cpo.token_pull import TokenPull
from core_client.ocpi.errors import OcpiError
from core_client.storage.store import Store
from ev_network.contracts import Escrow
from ev_network.errors import ChainUnavailable
from ev_network.pricing import Tariff
from ev_network.web.server import HttpServer

log = logging.getLogger("core_client.ocpi")
STATUS_EVERY_S = 1.0  # connector statuses compared (and changes pushed) this often
TARIFFS_EVERY_S = 30.0  # chain tariffs read again this often
UNKNOWN = "Unknown"


class DaemonStations:
    """:class:`~core_client.ocpi.cpo.modules.StationSource` of the daemon: ``refresh`` reads the stations and
    their chain tariffs (in a thread); ``statuses`` the connectors' statuses, returning those that changed.
    A station's ``updated`` is when its tariff or a connector status last changed (as we saw it)."""

    def __init__(
        self,
        store: Store,
        status_of: Callable[[str, int], str | None],
        escrow: Escrow,
        decimals: int,
        vat: Decimal | None,
    ) -> None:
        self.store, self.status_of, self.escrow = store, status_of, escrow
        self.token_decimals, self.vat = decimals, vat
        self._known: dict[int, OurStation] = {}

    def stations(self) -> list[OurStation]:
        return list(self._known.values())

    def decimals(self) -> int:
        return self.token_decimals

    def vat_percent(self) -> Decimal | None:
        return self.vat

    async def refresh(self) -> list[OurStation]:
        """Read our stations and their chain tariffs (ChainUnavailable: the previous copy stays); the
        stations read for the first time."""
        listed = self.store.stations()
        tariffs = await asyncio.to_thread(
            lambda: {i: self.escrow.get_tariff(self.escrow.get_station(i).tariff_id) for i in listed}
        )
        new = [i for i in listed if i not in self._known]
        for station_id, (cp_id, connectors) in listed.items():
            self._update(station_id, cp_id, connectors, tariffs[station_id])
        return [self._known[i] for i in new]

    def new_stations(self) -> bool:
        """Whether the store knows a station we have not read yet (a charge point booted for the first time)."""
        return not set(self.store.stations()) <= set(self._known)

    def statuses(self) -> list[tuple[OurStation, int, str]]:
        """Read the connectors' statuses: (station, connector, status) of each that changed."""
        changed = []
        for old in list(self._known.values()):
            for connector, status in self._update(old.station_id, old.charge_point_id, len(old.connectors), old.tariff):
                changed.append((self._known[old.station_id], connector, status))
        return changed

    def _update(self, station_id: int, cp_id: str, connectors: int, tariff: Tariff) -> list[tuple[int, str]]:
        now = {n: self.status_of(cp_id, n) or UNKNOWN for n in range(1, connectors + 1)}
        old = self._known.get(station_id)
        changed = [(n, s) for n, s in now.items() if old is None or old.connectors.get(n) != s]
        if old is None or changed or old.tariff != tariff:
            at = datetime.now(timezone.utc).replace(microsecond=0)
            self._known[station_id] = OurStation(station_id, cp_id, now, tariff, at)
        return [] if old is None else changed


class CpoService:
    """Our CPO endpoints for roaming eMSPs in the daemon."""

    def __init__(
        self,
        settings: CpoSettings,
        peers: PeerStore,
        stations: DaemonStations,
        roaming: Roaming | None,
        session_pushes: SessionPushes | None = None,
        tokens: TokenPull | None = None,
    ) -> None:
        self.settings = settings
        self.session_pushes = session_pushes
        self.peers = peers
        self.stations = stations
        self.roaming = roaming
        self.tokens = tokens
        self.server = CpoServer(settings, self.peers, stations, roaming, None if tokens is None else tokens.tokens)
        self.pushes = StatusPushes(settings, self.peers)
        self.http = HttpServer(self.server.app(), settings.host, settings.port)

    async def start(self) -> None:
        """Serve our endpoints; OSError naming the address if they cannot listen."""
        await self.http.start()
        log.info("OCPI CPO endpoints on %s/ (public %s)", self.http.url, self.settings.versions_endpoint)

    async def stop(self) -> None:
        await self.http.stop()

    async def run(self) -> None:
        """Keep the stations current: each station's Location PUT to the eMSPs once it is first read (at
        start, or when its charge point first boots), each connector's new status PATCHed; and the eMSPs'
        sessions pushed (:class:`SessionPushes`); the eMSPs' Token lists pulled (:class:`TokenPull`, its own task)."""
        pulls = None if self.tokens is None else asyncio.get_running_loop().create_task(self._pull_tokens())
        try:
            await self._keep_current()
        finally:
            if pulls is not None:
                pulls.cancel()

    async def _pull_tokens(self) -> None:
        assert self.tokens is not None
        while True:
            await self.tokens.round()
            await asyncio.sleep(STATUS_EVERY_S)

    async def _keep_current(self) -> None:
        read_at = -TARIFFS_EVERY_S
        while True:
            if time.monotonic() - read_at >= TARIFFS_EVERY_S or self.stations.new_stations():
                try:
                    new = await self.stations.refresh()
                    read_at = time.monotonic()
                except ChainUnavailable as error:
                    log.warning("OCPI CPO: station tariffs not read (%s): the last copy stays", error)
                    new = []
                for station in new:  # first published since we started: the eMSPs get its Location
                    await self.pushes.location(station)
            for station, connector, status in self.stations.statuses():
                await self.pushes.evse_status(station, connector, status)
            if self.roaming is not None:
                await self.roaming.lapse()
            if self.session_pushes is not None:
                await self.session_pushes.round()
            await asyncio.sleep(STATUS_EVERY_S)

    def health(self) -> dict[str, Any]:
        """The versions URL eMSPs register at, and each eMSP: registered, its parties, its mandate."""
        try:
            peers = self.peers.all()
        except OcpiError as error:
            return {"versions_url": self.settings.versions_endpoint, "emsps": [], "error": str(error)}
        return {
            "versions_url": self.settings.versions_endpoint,
            "stations_published": len(
                [s for s in self.stations.stations() if s.charge_point_id in self.settings.sites]
            ),
            "emsps": [
                {
                    "name": p.name,
                    "registered": p.registered,
                    "parties": [str(party) for party in p.parties()],
                    "mandate_id": p.mandate_id,
                    "tokens": None if self.tokens is None else self.tokens.tokens.count(p.name),
                }
                for p in peers
            ],
        }
