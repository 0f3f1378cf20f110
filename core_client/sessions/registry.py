"""The connected charge points, as the sessions see them: each one's registration state (keyed by
charge point id), the narrow port through which the sessions reach it, and our stations' meter keys.

A station link (:class:`core_client.ocpp.link.StationLink`) carries only OCPP: it hands its charge
point's messages to the session service and implements :class:`ChargePoint`, the calls the sessions
make (follow-ups after an answer, queued in an :class:`AfterReply`; RemoteStart, RemoteStop, the operator's
commands). Whether the
charge point is one of our stations (looked up on chain when it connects), has booted, or could not be
looked up is kept here, in a :class:`Registration` per connection, written only on the sessions side.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from core_client.config import Settings
from core_client.errors import CoreClientError
from core_client.storage.store import Store
from ev_network.errors import ChainUnavailable

log = logging.getLogger("core_client.sessions")
StationLookup = Callable[[str], Awaitable[tuple[int, int] | None]]
MeterKeyLookup = Callable[[int], Awaitable[bytes]]


class CommandFailed(CoreClientError):
    """A call to a charge point got no usable answer (CALLERROR, timeout, connection lost); ``sent`` is
    False when it never left (the charge point cannot have acted on it)."""

    def __init__(self, message: str, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class ChargePoint(Protocol):
    """What the sessions (and the operator's commands) may do with a connected charge point."""

    @property
    def id(self) -> str: ...
    def after_reply(self, send: Callable[[], Awaitable[Any]]) -> None: ...
    async def remote_start(self, connector: int, id_tag: str) -> str: ...
    async def remote_stop(self, transaction_id: int) -> str: ...
    async def reset(self, type: str) -> str: ...
    async def change_availability(self, connector: int, type: str) -> str: ...
    async def trigger_message(self, requested_message: str, connector: int | None = None) -> str: ...
    async def close(self, reason: str) -> None: ...


class LocalListHolder(ChargePoint, Protocol):
    """A charge point that may keep a local authorization list (an OCPP link; not one reached over OCPI)."""

    async def get_local_list_version(self) -> int: ...
    async def send_local_list(
        self, version: int, update_type: str, entries: dict[str, tuple[str, str] | None]
    ) -> str: ...


class AfterReply:
    """What a link sends once its answer is out (:meth:`ChargePoint.after_reply`): queued while the sessions
    decide, each sent as a task of the running loop by :meth:`send`, in the order queued."""

    def __init__(self) -> None:
        self._queued: list[Callable[[], Awaitable[Any]]] = []
        self._tasks: set[asyncio.Task] = set()

    def add(self, send: Callable[[], Awaitable[Any]]) -> None:
        """Send ``send()`` once the answer is out."""
        self._queued.append(send)

    def send(self) -> None:
        """The answer is out: send what waited for it."""
        sends, self._queued = self._queued, []
        for send in sends:
            task = asyncio.ensure_future(send())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


@dataclass
class Registration:
    """One connection's registration state: the station it is on chain, and whether it booted."""

    station_id: int | None = None
    connectors: int = 0
    boot_accepted: bool = False
    lookup_failed: bool = False  # the chain could not say whether it is one of our stations
    #: a charge point reached through another system (OCPI: the CPO's CSMS): whether it takes commands now
    reachable: Callable[[], bool] = lambda: True

    @property
    def online(self) -> bool:
        """Booted (or reachable) and registered on chain for this operator: sessions may be started here."""
        return self.station_id is not None and self.boot_accepted and self.reachable()

    def found(self, station: tuple[int, int] | None) -> None:
        """The station (id, connectors) the charge point is on chain, if known."""
        if station is not None:
            self.station_id, self.connectors = station


class Registry:
    """The connected charge points by id: each one's port (:attr:`links`) and :class:`Registration`;
    our stations' meter keys on chain."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        station_lookup: StationLookup | None = None,
        meter_key_lookup: MeterKeyLookup | None = None,
    ) -> None:
        self.settings, self.store = settings, store
        self.station_lookup, self.meter_key_lookup = station_lookup, meter_key_lookup
        self.spawn: Callable[[Coroutine[Any, Any, Any]], Any] = asyncio.ensure_future  # the service's task set
        self.links: dict[str, ChargePoint] = {}
        self.meter_keys: dict[int, bytes] = {}  # station id -> its meter key on chain (b"": none)
        self._registrations: dict[str, Registration] = {}

    def attach(self, link: ChargePoint, registration: Registration) -> ChargePoint | None:
        """Register a connected charge point (its registration from :meth:`resolve`); returns the
        connection it replaces, if any."""
        registration.found(self.store.station_of(link.id))
        old = self.links.get(link.id)
        self.links[link.id], self._registrations[link.id] = link, registration
        return old if old is not link else None

    def detach(self, link: ChargePoint) -> bool:
        """Forget the charge point if ``link`` is still its connection; whether it was."""
        if self.links.get(link.id) is not link:
            return False
        del self.links[link.id], self._registrations[link.id]
        log.info("%s: disconnected", link.id)
        return True

    def of(self, link: ChargePoint) -> Registration:
        """The registration of ``link`` (a detached or replaced connection gets a fresh, unused one)."""
        return self._registrations[link.id] if self.links.get(link.id) is link else Registration()

    def online(self, cp_id: str) -> bool:
        """Whether the charge point is connected, booted and one of our stations."""
        registration = self._registrations.get(cp_id)
        return registration is not None and registration.online

    async def resolve(self, cp_id: str, wait_s: float | None = None) -> Registration:
        """The registration of a connecting charge point: looked up on chain if it is not one of our
        known stations yet, waiting at most ``wait_s`` (default: the RPC timeout); a known station's meter
        key is read again in the background. A connecting charge point waits
        :data:`core_client.ocpp.server.CONNECT_LOOKUP_S` (its Boot is answered within a second whatever the
        chain does: Pending if the chain cannot say in time, and the lookup goes on in the background).
        (Stations registered while the daemon runs are also picked up by the event watcher.)"""
        registration = Registration()
        await self.look_up(cp_id, registration, wait_s)
        return registration

    async def look_up(self, cp_id: str, registration: Registration, wait_s: float | None = None) -> None:
        """Look the charge point up on chain unless it is a known station (whose meter key is read again)."""
        known = await self.store.thread.run(self.store.station_of, cp_id)
        if known is not None:
            self.spawn(self.meter_key(known[0], refresh=True))
        if known is not None or self.station_lookup is None:
            return
        try:
            timeout = self.settings.rpc_timeout_s + 1 if wait_s is None else wait_s
            found = await asyncio.wait_for(self.station_lookup(cp_id), timeout)
        except (ChainUnavailable, asyncio.TimeoutError) as error:
            reason = str(error) or f"no answer within {timeout:g}s"
            log.warning("%s: cannot check its registration, chain unreachable (%s)", cp_id, reason)
            registration.lookup_failed = True
            return
        except Exception:
            log.exception("%s: station lookup failed", cp_id)
            registration.lookup_failed = True
            return
        registration.lookup_failed = False
        if found is not None:
            await self.store.thread.run(self.store.add_station, found[0], cp_id, found[1])
            registration.found(found)
            self.spawn(self.meter_key(found[0], refresh=True))

    async def meter_key(self, station_id: int, refresh: bool = False) -> bytes | None:
        """The station's meter key as registered on chain (b"": none, the plain path), read on connect and
        cached; None while the chain cannot say."""
        if (refresh or station_id not in self.meter_keys) and self.meter_key_lookup is not None:
            try:
                key = await asyncio.wait_for(self.meter_key_lookup(station_id), self.settings.rpc_timeout_s + 1)
            except (ChainUnavailable, asyncio.TimeoutError) as error:
                log.warning("station %d: cannot read its meter key, chain unreachable (%s)", station_id, error)
            else:
                if key != self.meter_keys.get(station_id, key):
                    log.warning("station %d: meter key changed on chain", station_id)
                self.meter_keys[station_id] = key
        return self.meter_keys.get(station_id, None if self.meter_key_lookup else b"")
