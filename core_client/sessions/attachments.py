"""Which charge points this instance acts for: the ones connected here (each claimed when it connects,
released when its connection closes), whether their boot made them ready for sessions, and, among several
instances on one PostgreSQL (:mod:`core_client.storage.claims`), which charge points' sessions this
instance's reconcile pass acts for. The connections themselves and each one's registration are the
registry's (:mod:`core_client.sessions.registry`); the session service composes both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from core_client.sessions.readings import Live
from core_client.sessions.registry import ChargePoint, Registration, Registry
from core_client.storage.claims import LocalClaims

log = logging.getLogger("core_client.sessions")


class Attachments:
    """The charge points attached to this instance, and the ones it acts for. ``spawn`` runs a call to a
    charge point as a task; ``wake`` runs the reconcile loop now (both the reconcile loop's)."""

    def __init__(
        self,
        registry: Registry,
        claims: LocalClaims,
        live: Live,
        spawn: Callable[[Coroutine[Any, Any, Any]], None],
        wake: Callable[[], None],
    ) -> None:
        self.registry, self.claims, self.live = registry, claims, live
        self.spawn, self.wake = spawn, wake

    def claim(self, cp_id: str) -> None:
        """A charge point connected to this instance: it holds the charge point now (another instance
        that held it stops writing about it; see core_client.storage.claims)."""
        epoch = self.claims.claim(cp_id)
        if self.claims.shared:
            log.info("%s: held by instance %s (epoch %d)", cp_id, self.claims.instance_id, epoch)

    def detach(self, link: ChargePoint) -> None:
        """Forget a closed connection; if it was the charge point's, write what it reported and let it go."""
        epoch = self.claims.epochs.get(link.id)
        if self.registry.detach(link) and self.claims.shared and epoch is not None:
            self.live.flush()
            self.claims.release(link.id, epoch)

    def acting_for(self, leading: bool) -> Callable[[str], bool]:
        """Which charge points' sessions this instance's reconcile pass acts for (RemoteStart, RemoteStop,
        rejects, start timeouts): alone on its database, all; among several instances, those it holds, and
        (``leading``: it holds the signer lease) those no live instance holds. First drops the connections
        another instance took."""
        if not self.claims.shared:
            return lambda cp_id: True
        self.claims.mine()
        for cp_id, link in list(self.registry.links.items()):
            if cp_id not in self.claims.epochs:
                log.warning("%s: connected to another instance now: closing the connection here", cp_id)
                self.live.forget(cp_id)
                self.registry.detach(link)
                self.spawn(link.close("connected to another instance"))
        holders = self.claims.holders()
        return lambda cp_id: self.claims.acts_for(cp_id, leading, holders)

    def booted(self, link: ChargePoint, station: tuple[int, int] | None) -> None:
        """The charge point booted (answered with ``decisions.boot``): at one of our stations, sessions may
        start there once the answer is out; a failed look-up on chain is tried again."""
        registration = self.registry.of(link)
        if station is not None:
            registration.found(station)
            link.after_reply(lambda: self._accepted(registration))
        elif registration.lookup_failed:
            self.spawn(self.registry.look_up(link.id, registration))

    def resumed(self, link: ChargePoint) -> None:
        """A message other than BootNotification on the connection: a known station's charge point that
        reconnected (to this instance, or from another one) without booting again, as OCPP 1.6 lets it,
        was accepted before: sessions may start and stop there again."""
        registration = self.registry.of(link)
        links = self.registry.links
        if not registration.boot_accepted and registration.station_id is not None and links.get(link.id) is link:
            log.info("%s: back without a BootNotification: station %d", link.id, registration.station_id)
            registration.boot_accepted = True
            self.wake()

    async def _accepted(self, registration: Registration) -> None:
        registration.boot_accepted = True
        self.wake()
