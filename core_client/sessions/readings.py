"""What changes with every message, kept in memory and written to SQLite in batches: the latest meter
reading of each running session (the budget check needs nothing else) and each connector's latest
status (the busy check). Only the session service writes sessions, so its records here are current.
A session change written through the store carries the session's reading too; :meth:`Live.flush`
writes the rest (the reconcile loop calls it at least every half second, and at shutdown). A crash
loses at most the readings since the last flush: the stop reading comes from StopTransaction anyway,
and the meter stop rule allows for the time since the last reading it has.

Several instances on one PostgreSQL (:mod:`core_client.storage.claims`): another instance (the leader,
applying chain events) writes sessions too, so a session is read from the store each time, with this
instance's newer reading laid over it; and a flush writes only the readings and statuses of the charge
points this instance still holds at the epoch it took them (the claim rows are locked until the flush
commits): one that moved to another instance keeps the readings written there.
"""

from __future__ import annotations

from core_client.sessions.machine import RUNNING, SessionRecord
from core_client.storage.claims import LocalClaims
from core_client.storage.store import Store


class Live:
    """Running sessions with their latest reading, and connector statuses, over the store."""

    def __init__(self, store: Store, max_power_w: int = 350_000, claims: LocalClaims | None = None) -> None:
        self.store, self.max_power_w = store, max_power_w  # the most a connector delivers (max_power_kw)
        self.claims = claims or LocalClaims()
        self._sessions: dict[int, SessionRecord] = {}
        self._power: dict[int, int] = {}  # running session -> the Power.Active.Import of its last MeterValues
        self._unsaved: set[int] = set()
        self._statuses: dict[tuple[str, int], tuple[str, str]] = {}

    def session(self, session_id: int) -> SessionRecord | None:
        """The session as it is now (with its latest meter reading)."""
        if self.claims.shared:
            stored = self.store.get_session(session_id)
            return None if stored is None else self.current(stored)
        return self._sessions.get(session_id) or self.store.get_session(session_id)

    def current(self, record: SessionRecord) -> SessionRecord:
        """``record`` (read from the store) with the latest reading, if it is a running session."""
        if not self.claims.shared:
            return self._sessions.get(record.session_id, record)
        mine = self._sessions.get(record.session_id)
        if mine is None or record.state not in RUNNING or (mine.meter_at or 0) <= (record.meter_at or 0):
            return record
        return record.update(meter_last=mine.meter_last, meter_at=mine.meter_at)

    def forget(self, cp_id: str) -> None:
        """Drop what is kept of a charge point this instance no longer holds (another instance took it)."""
        gone = {i for i, s in self._sessions.items() if s.charge_point_id == cp_id}
        self._sessions = {i: s for i, s in self._sessions.items() if i not in gone}
        self._unsaved -= gone
        for session_id in gone:
            self._power.pop(session_id, None)
        self._statuses = {key: value for key, value in self._statuses.items() if key[0] != cp_id}

    def stale(self, session_id: int) -> None:
        """Another writer changed the session since it was read: alone on the database, the record kept
        here goes (the session is read afresh); among several instances only its reading is kept here,
        laid over what the store says (:meth:`current`), so there is nothing to drop."""
        if not self.claims.shared:
            self._sessions.pop(session_id, None)
            self._unsaved.discard(session_id)

    def saved(self, record: SessionRecord) -> None:
        """``record`` is committed to the store."""
        self._unsaved.discard(record.session_id)
        if record.state in RUNNING:
            self._sessions[record.session_id] = record
        else:
            self._sessions.pop(record.session_id, None)
            self._power.pop(record.session_id, None)

    def reading(self, record: SessionRecord) -> None:
        """A new meter reading of a running session (written by :meth:`flush`)."""
        self._sessions[record.session_id] = record
        self._unsaved.add(record.session_id)

    def reported_power(self, session_id: int, power_w: int | None) -> None:
        """The active power a running session's charge point reported with its last MeterValues (None:
        it reported none, or none plausible). In memory only: live data, never billed."""
        if power_w is None:
            self._power.pop(session_id, None)
        else:
            self._power[session_id] = power_w

    def power(self, session_id: int) -> int | None:
        """The active power (W) the charge point reported with its session's last MeterValues, if any."""
        return self._power.get(session_id)

    def status(self, cp_id: str, connector: int, status: str, error_code: str) -> None:
        """A connector's new status (written by :meth:`flush`)."""
        self._statuses[(cp_id, connector)] = (status, error_code)

    def connector_status(self, cp_id: str, connector: int) -> str | None:
        """The latest StatusNotification status of a connector."""
        unsaved = self._statuses.get((cp_id, connector))
        return unsaved[0] if unsaved else self.store.connector_status(cp_id, connector)

    def flush(self) -> None:
        """Write the readings and statuses not yet in the store (one transaction; see the module on
        several instances)."""
        records = [self._sessions[i] for i in self._unsaved if i in self._sessions]
        statuses, self._statuses = self._statuses, {}
        self._unsaved.clear()
        if records or statuses:
            with self.store.transaction():
                if self.claims.shared:
                    held = self.claims.still_mine({r.charge_point_id for r in records} | {k[0] for k in statuses})
                    records = [r for r in records if r.charge_point_id in held]
                    statuses = {key: value for key, value in statuses.items() if key[0] in held}
                self.store.save_meters([(r.session_id, r.meter_last or 0, r.meter_at or 0.0) for r in records])
                self.store.set_connector_statuses([(*key, *value) for key, value in statuses.items()])
