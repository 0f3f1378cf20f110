"""The card cache: the mandates drivers granted this operator, as last read from chain.

Grants (``evcard:<mandate id>:<salt hex>``, made by ``ev-wallet card add``) are lines of the file named
by the setting ``cards_file`` (:mod:`core_client.chain.grants`; ``core-client cards add|list|remove``
edit it); the file is read again when it changes. Every ``cards_poll_s`` the cache reads, for each granted mandate, its record (``getMandate``:
payer, caps, committed, expiry, revoked), whether it names our operator, and its linked token
references (the ``MandateTokenSet`` events). The session service decides Authorize/StartTransaction
from this cache (:mod:`core_client.sessions.cards`) and never waits for the chain.

While the chain cannot be reached the last copy stays in use (a card known then still starts, see the
exposure note in :mod:`core_client.sessions.cards`); the copy is kept in the store (meta ``cards``), so a
Core Client restarted during an outage knows the cards too. A revoke reaches the Core Client within one
poll; an open sent before is refused by the contract (the transaction is then stopped).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from web3 import Web3

from core_client.chain.grants import read_grants
from core_client.chain.outage import Outage
from core_client.sessions.cards import CardIndex, CardMandate
from core_client.storage.card_state import mandate_from_row, mandate_row
from core_client.storage.store import Store
from ev_network.errors import ChainUnavailable, chain_errors
from ev_network.mandates import Mandates

log = logging.getLogger("core_client.chain")
META_KEY = "cards"


class MandateCache:
    """The granted mandates of one operator (:class:`CardMandate` each), refreshed from chain."""

    def __init__(
        self, mandates: Mandates, operator: str, grants_file: Path, from_block: int, store: Store, poll_s: float = 2.0
    ) -> None:
        self.contract, self.operator = mandates, Web3.to_checksum_address(operator)
        self.grants_file, self.from_block, self.store, self.poll_s = grants_file, from_block, store, poll_s
        self.grants: dict[int, bytes] = {}
        self.cached: dict[int, CardMandate] = _load(store.meta(META_KEY))
        self.index = CardIndex(self.cached.values())  # of the cached mandates, made again when they change
        self.read_at: float | None = None
        self.refreshed = asyncio.Event()  # set after each successful refresh
        self.on_change: Callable[[], None] = lambda: None  # called when a read found something new
        self.outage = Outage("card cache")
        self._grants_stamp: tuple[float, int, int] | None = None
        self._stopping = False

    def mandates(self) -> list[CardMandate]:
        return list(self.cached.values())

    def current(self) -> CardIndex:
        """The cached mandates, indexed by token reference (a new index each time they change)."""
        return self.index

    def _load_grants(self) -> None:
        try:
            stat = self.grants_file.stat()
        except FileNotFoundError:
            self.grants, self._grants_stamp = {}, None
            return
        if (stat.st_mtime, stat.st_size, stat.st_ino) != self._grants_stamp:
            self.grants = read_grants(self.grants_file)
            self._grants_stamp = (stat.st_mtime, stat.st_size, stat.st_ino)
            log.info("cards: %d mandate(s) granted in %s", len(self.grants), self.grants_file)

    async def refresh(self) -> None:
        """Read every granted mandate from chain (ChainUnavailable: the previous copy stays)."""
        self._load_grants()
        grants = dict(self.grants)

        def read() -> dict[int, CardMandate | None]:
            with chain_errors(self.contract.w3):
                head = self.contract.w3.eth.block_number  # committed, read after, counts the opens up to here
            return {i: self._read(i, salt, head) for i, salt in grants.items()}

        fresh = await asyncio.to_thread(read)
        cached = {i: m for i, m in fresh.items() if m is not None}
        changed = _unread(cached) != _unread(self.cached)
        if changed:  # a kept copy's committed and read_block go together
            self.store.set_meta(META_KEY, _dump(cached))
        if cached != self.cached:
            self.index = CardIndex(cached.values(), previous=self.index)
        self.cached, self.read_at = cached, time.time()
        if changed:
            self.on_change()
        self.refreshed.set()

    def health(self) -> dict:
        """For /health: how many mandates are granted, which are known, and when they were last read."""
        return {
            "granted": len(self.grants),
            "known": len(self.cached),
            "mandates": sorted(self.cached),
            "read_at": self.read_at,
        }

    def _read(self, mandate_id: int, salt: bytes, head: int) -> CardMandate | None:
        with chain_errors(self.contract.w3):
            m = self.contract.get(mandate_id)
            if int(m.payer, 16) == 0:
                log.warning("cards: granted mandate %d does not exist on chain", mandate_id)
                return None
            named = self.contract.is_operator(mandate_id, self.operator)
            events = self.contract.contract.events.MandateTokenSet().get_logs(
                from_block=self.from_block, argument_filters={"mandateId": mandate_id}
            )
        refs: set[bytes] = set()
        for event in sorted(events, key=lambda e: (e["blockNumber"], e["logIndex"])):
            ref = bytes(event["args"]["tokenRef"])
            refs.add(ref) if event["args"]["linked"] else refs.discard(ref)
        return CardMandate.of(m, salt, named, frozenset(refs), head)

    async def run(self) -> None:
        """Refresh every ``poll_s`` until :meth:`stop`."""
        while not self._stopping:
            try:
                await self.refresh()
                self.outage.ok()
                delay = self.poll_s
            except ChainUnavailable as error:
                delay = max(self.outage.failed(error), self.poll_s)
            except Exception:
                log.exception("card cache: unexpected error; retrying")
                delay = 5.0
            await asyncio.sleep(delay)

    def stop(self) -> None:
        self._stopping = True


def _unread(cached: dict[int, CardMandate]) -> dict[int, CardMandate]:
    """The copy without when it was read (a new read of the same state is not written again)."""
    return {i: replace(m, read_block=None) for i, m in cached.items()}


def _dump(cached: dict[int, CardMandate]) -> str:
    return json.dumps([mandate_row(m) for m in cached.values()])


def _load(text: str | None) -> dict[int, CardMandate]:
    return {row["mandate_id"]: mandate_from_row(row) for row in (json.loads(text) if text else [])}
