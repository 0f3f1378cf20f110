"""Chain I/O of the Core Client: the event watcher (escrow events -> session service) and the chain
worker (job queue -> transactions). Blocking web3 calls run in threads; SQLite stays on the loop.

Event watcher: reads from the stored cursor + 1 to the head (minus ``confirmations``), at most
``MAX_RANGE`` blocks per poll: StationRegistered for our operator first, then SessionRequested,
StopRequested and TariffSet (the tariffs sessions name) filtered to our station ids by their indexed topic. All of a range's events are
handled in chain order and the cursor moves in the same SQLite transaction: after a crash the range
is read again and nothing was half-applied, so no event is skipped or handled twice.

The chain worker lives in :mod:`core_client.chain.worker` and is re-exported here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from web3 import Web3

from core_client.chain.outage import Outage
from core_client.chain.worker import ChainWorker
from core_client.storage.store import Store
from ev_network.contracts import Escrow
from ev_network.deployment import Deployment
from ev_network.errors import ChainUnavailable, ContractRevert, EVNetworkError
from ev_network.events import ChainEvent, EventReader, indexed_topic
from ev_network.pricing import Tariff
from ev_network.session_ids import hex_session_id

__all__ = ["MAX_RANGE", "ChainWorker", "EventWatcher", "Events", "Outage"]
log = logging.getLogger("core_client.chain")
MAX_RANGE = 2000


class Events(Protocol):
    """Where escrow events go (:class:`core_client.sessions.service.SessionService`), inside the transaction
    that moves the cursor."""

    def on_station_registered(self, station_id: int, charge_point_id: str, connectors: int) -> None: ...
    def on_session_requested(self, args: dict, block: int, tariff: Tariff) -> bool: ...
    def on_stop_requested(self, session_id: int) -> bool: ...
    def wake(self) -> None: ...


class EventWatcher:
    """Follows the escrow's events for our operator's stations."""

    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        operator: str,
        store: Store,
        service: Events,
        poll_interval: float = 0.5,
        confirmations: int = 0,
        start_block: int | None = None,
    ) -> None:
        self.escrow = Escrow(w3, deployment)
        self.reader = EventReader(w3, deployment.escrow)
        self.deployment = deployment
        self.operator = Web3.to_checksum_address(operator)
        self.store, self.service = store, service
        self.thread = store.thread
        self.poll_interval, self.confirmations, self.start_block = poll_interval, confirmations, start_block
        self.head: int | None = None
        self.tariffs: dict[int, Tariff] = {}
        self.outage = Outage("event watcher")
        self._stopping = False

    async def initialize(self) -> None:
        """On the first run: set the cursor, and list our stations registered before the start block."""
        if await self.thread.run(self.store.cursor) is not None:
            return
        start = self.start_block if self.start_block is not None else self.deployment.deployment_block
        stations = await asyncio.to_thread(self.escrow.stations) if start > self.deployment.deployment_block else []
        await self.thread.run(self._first_run, [s for s in stations if s.operator == self.operator], start)
        log.info("first run: reading events from block %d", start)

    def _first_run(self, stations: list, start: int) -> None:
        for station in stations:
            self.service.on_station_registered(station.station_id, station.charge_point_id, station.connectors)
        self.store.set_cursor(start - 1)

    async def run(self) -> None:
        """Poll until :meth:`stop`; chain outages are logged and retried with backoff."""
        while not self._stopping:
            try:
                while await self.poll_once() and not self._stopping:
                    pass  # catching up: next range at once
                self.outage.ok()
                delay = self.poll_interval
            except ChainUnavailable as error:
                delay = self.outage.failed(error)
            except Exception:
                log.exception("event watcher: unexpected error; retrying")
                delay = 5.0
            await asyncio.sleep(delay)

    def stop(self) -> None:
        self._stopping = True

    async def poll_once(self) -> int:
        """Handle the next range of events; returns how many blocks it covered (0: up to date)."""
        self.head = await asyncio.to_thread(self.reader.head)
        cursor = await self.thread.run(self.store.cursor)
        assert cursor is not None, "initialize() first"
        target = self.head - self.confirmations
        if target <= cursor:
            return 0
        to_block = min(target, cursor + MAX_RANGE)
        ours = set(await self.thread.run(self.store.stations))
        registrations, events = await asyncio.to_thread(self._fetch, cursor + 1, to_block, ours)
        await self.thread.run(self._handle, registrations, events, cursor, to_block)
        if events:
            self.service.wake()
        return to_block - cursor

    def _handle(self, registrations: list[ChainEvent], events: list[ChainEvent], cursor: int, to_block: int) -> None:
        """A range of events to the session service, committed with the cursor (on the store's thread)."""
        with self.store.transaction():
            for event in registrations:
                self.service.on_station_registered(
                    event.args["stationId"], event.args["chargePointId"], event.args["connectors"]
                )
            for event in events:
                if event.name == "SessionRequested":
                    tariff = self.tariffs[event.args["tariffId"]]
                    self.service.on_session_requested(event.args, event.block_number, tariff)
                elif event.name == "StopRequested":
                    self.service.on_stop_requested(event.args["sessionId"])
            if self.store.cursor() != cursor:
                raise EVNetworkError("event cursor moved under the watcher")
            self.store.set_cursor(to_block)

    def _fetch(self, from_block: int, to_block: int, ours: set[int]) -> tuple[list[ChainEvent], list[ChainEvent]]:
        """(our StationRegistered, SessionRequested + StopRequested at our stations), in chain order."""
        registrations = self.reader.fetch(
            from_block, to_block, ["StationRegistered"], [None, indexed_topic(self.operator)]
        )
        station_ids = ours | {e.args["stationId"] for e in registrations}
        if not station_ids:
            return registrations, []
        topics = [indexed_topic(i) for i in sorted(station_ids)]
        requested = self.reader.fetch(from_block, to_block, ["SessionRequested"], [None, None, topics])
        stops = self.reader.fetch(from_block, to_block, ["StopRequested"], [None, topics])
        # a tariff record never changes: the TariffSet events of our stations spare a getTariff per tariff
        for event in self.reader.fetch(from_block, to_block, ["TariffSet"], [topics]):
            args = event.args
            self.tariffs[args["tariffId"]] = Tariff(args["pricePerKWh"], args["sessionFee"], args["timeFeePerHour"])
        events = sorted(requested + stops, key=lambda e: e.position)
        for event in requested:  # tariffs set before the first block read
            tariff_id = event.args["tariffId"]
            if tariff_id not in self.tariffs:
                try:
                    self.tariffs[tariff_id] = self.escrow.get_tariff(tariff_id)
                except ContractRevert as error:
                    raise EVNetworkError(
                        f"tariff {tariff_id} of session {hex_session_id(event.args['sessionId'])}: {error}"
                    ) from None
        return registrations, events
