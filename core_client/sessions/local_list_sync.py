"""Keeps the local authorization list of every connected charge point that supports one in step with the
card cache (standalone mode only: in proxy mode the list is the CSMS's). Entries: :mod:`core_client.sessions.local_list`.

On a charge point's first sync after it connects: GetLocalListVersion (-1, or a CALLERROR: it keeps no
list, and is never asked again on this connection); if it answers the version it last accepted from us
(kept in the database, :class:`core_client.storage.card_state.LocalLists`: a reconnect or a restart of the
Core Client), only what changed since goes out (a Differential update, or nothing); otherwise a Full update
with every card seen so far (none if there is none and its list is empty); afterwards a Differential update with what changed, the version
one up each time. Syncs run when the cache was read, a card is seen for the first time, an open under a
mandate was queued or failed (:meth:`LocalListSync.touch`), and at least every ``interval_s`` (a connected
charge point, a mandate expiring). Each sync re-checks only the cards that may have changed
(:class:`core_client.sessions.local_list.WantedList`), and a charge point in step is sent only those. A Failed or VersionMismatch answer
makes the next update a Full one; NotSupported ends it for the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from core_client.sessions.cards import CardIndex
from core_client.sessions.local_list import Entry, WantedList, list_changes
from core_client.sessions.registry import CommandFailed, LocalListHolder, Registry
from core_client.storage.card_state import LocalLists

log = logging.getLogger("core_client.sessions")
FULL, DIFFERENTIAL = "Full", "Differential"


@dataclass
class _Held:
    """What one connection's charge point holds, as far as we know."""

    link: object
    version: int
    entries: dict[str, Entry] | None = None  # None: send a Full update next
    supported: bool = True
    round: int | None = None  # the sync round whose wanted list it holds (None: not known to be in step)


class LocalListSync:
    """Sends each connected charge point the list of the cards seen, from the card cache."""

    def __init__(
        self,
        registry: Registry,
        index: Callable[[], CardIndex],
        id_tags: Callable[[], Iterable[str]],
        queued: Callable[[int], int],
        kept: LocalLists,
        interval_s: float = 5.0,
    ) -> None:
        self.registry, self.index, self.id_tags, self.kept = registry, index, id_tags, kept
        self.interval_s = interval_s
        self.wanted = WantedList(queued)
        self.round = 0  # one up each time the wanted list changes
        self.held: dict[str, _Held] = {}
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Sync soon (the cache changed, a card was seen)."""
        self._wake.set()

    def touch(self, mandate_id: int) -> None:
        """Sync the cards of the mandate soon (an open under it was queued or failed)."""
        self.wanted.touch(mandate_id)
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            try:
                await self.sync_all()
            except Exception:
                log.exception("local lists: unexpected error; retrying")

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def sync_all(self) -> None:
        changed = self.wanted.update(self.index(), list(self.id_tags()), time.time())
        if changed:
            self.round += 1
        links = [link for cp_id, link in list(self.registry.links.items()) if self.registry.online(cp_id)]
        await asyncio.gather(*(self.sync(link, changed) for link in links if hasattr(link, "send_local_list")))
        for cp_id in [cp_id for cp_id in self.held if cp_id not in self.registry.links]:
            del self.held[cp_id]

    async def sync(self, link: LocalListHolder, changed: set[str]) -> None:
        """Bring ``link``'s list to the wanted one (``changed``: the idTags whose entry changed this round)."""
        wanted = self.wanted.entries
        try:
            held = self.held.get(link.id)
            if held is None or held.link is not link:
                version = await link.get_local_list_version()
                kept = self.kept.get(link.id)
                entries = kept[1] if kept is not None and version >= 0 and kept[0] == version else None
                held = self.held[link.id] = _Held(link, version, entries, version >= 0)
                if held.supported and version == 0 and not wanted and entries is None:
                    held.entries = {}  # empty, as it should be
            if not held.supported or held.round == self.round:
                return
            if held.entries is None:
                update_type, changes = FULL, dict(wanted)
            else:
                update_type = DIFFERENTIAL
                if (
                    held.round is not None and held.round == self.round - 1
                ):  # in step before this round: only what changed in it
                    changes = {tag: wanted.get(tag) for tag in changed if held.entries.get(tag) != wanted.get(tag)}
                else:
                    changes = list_changes(held.entries, wanted)
                if not changes:
                    held.round = self.round
                    return
            status = await link.send_local_list(held.version + 1, update_type, changes)
        except CommandFailed as error:
            log.info("%s: no local list (%s)", link.id, error)
            self.held[link.id] = _Held(link, -1, None, False)
            return
        if status == "Accepted":
            if update_type == FULL:
                held.entries = dict(changes)  # type: ignore[arg-type]
            else:
                assert held.entries is not None
                for tag, e in changes.items():
                    if e is None:
                        held.entries.pop(tag, None)
                    else:
                        held.entries[tag] = e
            held.version, held.round = held.version + 1, self.round
            self.kept.put(link.id, held.version, held.entries)
            log.info("%s: local list version %d (%s, %d card(s))", link.id, held.version, update_type, len(changes))
        elif status == "NotSupported":
            held.supported = False
        else:  # Failed, VersionMismatch: ask its version again, then a Full update
            log.warning("%s: SendLocalList %s answered %s; a Full update follows", link.id, update_type, status)
            del self.held[link.id]
            self.kept.forget(link.id)
