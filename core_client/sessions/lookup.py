"""Which session a charge point's input is about: the session of an id, of a transaction, of an idTag, of a
MeterValues (its transaction's owner kept in memory: read on every MeterValues, fixed once the transaction
exists); and the running sessions whose stop waits for their station's meter key. Reads the store and the
live readings (:mod:`core_client.sessions.readings`); writes nothing.
"""

from __future__ import annotations

import logging

from core_client.sessions.machine import HOLDS_CONNECTOR, RUNNING, SessionRecord, tag_of_id_tag
from core_client.sessions.readings import Live
from core_client.storage.store import Store
from ev_network import ocmf

log = logging.getLogger("core_client.sessions")
OWNER_CACHE_MAX = 50_000  # transactions whose owner is kept in memory (one per running session)


class SessionLookup:
    """The session an input names, as it is now (with its latest meter reading)."""

    def __init__(self, store: Store, live: Live) -> None:
        self.store, self.live = store, live
        self._transaction_owner: dict[int, tuple[str, int | None]] = {}  # transaction -> (charge point, session)
        self._awaiting_key: set[int] | None = None  # stopped sessions waiting for their meter key (None: not read)

    def session(self, session_id: int) -> SessionRecord | None:
        """The session as it is now (with its latest meter reading)."""
        return self.live.session(session_id)

    def of_transaction(self, transaction_id: int) -> SessionRecord | None:
        """The session a transaction belongs to (None for a transaction that is no session of ours)."""
        tx = self.store.get_transaction(transaction_id)
        return None if tx is None or tx.session_id is None else self.session(tx.session_id)

    def of_tag(self, id_tag: str | None, cp_id: str) -> SessionRecord | None:
        """The session an idTag names: ``EVN<tag>``, or at a station with a meter key the tag its meter
        signs (:func:`ev_network.ocmf.session_id_tag`, found among the charge point's live sessions)."""
        tag = tag_of_id_tag(id_tag)
        if tag is not None:
            s = self.store.session_by_tag(tag)
        else:
            live = self.store.sessions_in(HOLDS_CONNECTOR, cp_id) if id_tag and id_tag.startswith("EV") else []
            s = next((c for c in live if ocmf.session_id_tag(c.session_id) == id_tag), None)
        return self.live.current(s) if s is not None else None

    def for_meter(self, cp_id: str, connector: int, transaction_id: int | None) -> SessionRecord | None:
        """The session a MeterValues of ``cp_id`` is about (None: none, or a transaction of another)."""
        if transaction_id is None:
            running = self.store.sessions_in(RUNNING, cp_id)
            return next((self.session(s.session_id) for s in running if s.connector == connector), None)
        owner = self._transaction_owner.get(transaction_id)
        if owner is None:
            tx = self.store.get_transaction(transaction_id)
            if tx is not None:
                if len(self._transaction_owner) >= OWNER_CACHE_MAX:  # late meter values of old transactions
                    self._transaction_owner.clear()
                owner = self._transaction_owner[transaction_id] = (tx.charge_point_id, tx.session_id)
        if owner is None or owner[0] != cp_id:
            log.warning("%s: MeterValues for transaction %d that is not its own: ignored", cp_id, transaction_id)
            return None
        return self.session(owner[1]) if owner[1] is not None else None

    def forget(self, transaction_id: int) -> None:
        """Drop the cached owner of a transaction (stopped, or its session just recorded)."""
        self._transaction_owner.pop(transaction_id, None)

    def awaiting_key(self, session_id: int) -> None:
        """The charge point stopped the running session ``session_id``: its settle waits for its station's meter key."""
        if self._awaiting_key is not None:
            self._awaiting_key.add(session_id)

    def stopped_awaiting_key(self, shared: bool) -> list[SessionRecord]:
        """Running sessions whose charge point has stopped the transaction: their settle waits for the key.
        Looked up in the store once (after a restart), then kept in memory; among several instances
        (``shared``), each time (another instance may have recorded the stop)."""
        if self._awaiting_key is None or shared:
            self._awaiting_key = {
                s.session_id
                for s in self.store.sessions_in(RUNNING)
                if s.transaction_id is not None
                and (tx := self.store.get_transaction(s.transaction_id)) is not None
                and tx.meter_stop is not None
            }
        waiting = [s for sid in self._awaiting_key if (s := self.session(sid)) is not None and s.state in RUNNING]
        self._awaiting_key = {s.session_id for s in waiting}
        return waiting
