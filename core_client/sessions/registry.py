"""The connected charge points, as the sessions see them: each one's registration state (keyed by
charge point id) and the narrow port through which the sessions reach it.

A station link (:class:`core_client.ocpp.link.StationLink`) carries only OCPP: it hands its charge
point's messages to the session service and implements :class:`ChargePoint`, the calls the sessions
make (follow-ups after an answer, RemoteStart, RemoteStop, the operator's commands). Whether the
charge point is one of our stations, has booted, or could not be looked up on chain is kept here, in a
:class:`Registration` per connection, written only by the session service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from core_client.errors import CoreClientError


class CommandFailed(CoreClientError):
    """A call to a charge point got no usable answer (CALLERROR, timeout, connection lost)."""


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


@dataclass
class Registration:
    """One connection's registration state: the station it is on chain, and whether it booted."""

    station_id: int | None = None
    connectors: int = 0
    boot_accepted: bool = False
    lookup_failed: bool = False  # the chain could not say whether it is one of our stations

    @property
    def online(self) -> bool:
        """Booted and registered on chain for this operator: sessions may be started here."""
        return self.station_id is not None and self.boot_accepted

    def found(self, station: tuple[int, int] | None) -> None:
        """The station (id, connectors) the charge point is on chain, if known."""
        if station is not None:
            self.station_id, self.connectors = station


class Registry:
    """The connected charge points by id: each one's port (:attr:`links`) and :class:`Registration`."""

    def __init__(self) -> None:
        self.links: dict[str, ChargePoint] = {}
        self._registrations: dict[str, Registration] = {}

    def attach(self, link: ChargePoint, registration: Registration) -> ChargePoint | None:
        """Register a connected charge point; returns the connection it replaces, if any."""
        old = self.links.get(link.id)
        self.links[link.id], self._registrations[link.id] = link, registration
        return old if old is not link else None

    def detach(self, link: ChargePoint) -> bool:
        """Forget the charge point if ``link`` is still its connection; whether it was."""
        if self.links.get(link.id) is not link:
            return False
        del self.links[link.id], self._registrations[link.id]
        return True

    def of(self, link: ChargePoint) -> Registration:
        """The registration of ``link`` (a detached or replaced connection gets a fresh, unused one)."""
        return self._registrations[link.id] if self.links.get(link.id) is link else Registration()

    def online(self, cp_id: str) -> bool:
        """Whether the charge point is connected, booted and one of our stations."""
        registration = self._registrations.get(cp_id)
        return registration is not None and registration.online
