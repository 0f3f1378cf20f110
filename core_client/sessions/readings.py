"""What changes with every message, kept in memory and written to SQLite in batches: the latest meter
reading of each running session (the budget check needs nothing else) and each connector's latest
status (the busy check). Only the session service writes sessions, so its records here are current.
A session change written through the store carries the session's reading too; :meth:`Live.flush`
writes the rest (the reconcile loop calls it at least every half second, and at shutdown). A crash
loses at most the readings since the last flush: the stop reading comes from StopTransaction anyway,
and the meter stop rule allows for the time since the last reading it has.
"""

from __future__ import annotations

from core_client.sessions.machine import RUNNING, SessionRecord
from core_client.storage.store import Store


class Live:
    """Running sessions with their latest reading, and connector statuses, over the store."""

    def __init__(self, store: Store, max_power_w: int = 350_000) -> None:
        self.store, self.max_power_w = store, max_power_w  # the most a connector delivers (max_power_kw)
        self._sessions: dict[int, SessionRecord] = {}
        self._power: dict[int, int] = {}  # running session -> the Power.Active.Import of its last MeterValues
        self._unsaved: set[int] = set()
        self._statuses: dict[tuple[str, int], tuple[str, str]] = {}

    def session(self, session_id: int) -> SessionRecord | None:
        """The session as it is now (with its latest meter reading)."""
        return self._sessions.get(session_id) or self.store.get_session(session_id)

    def current(self, record: SessionRecord) -> SessionRecord:
        """``record`` (read from the store) with the latest reading, if it is a running session."""
        return self._sessions.get(record.session_id, record)

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
        """Write the readings and statuses not yet in SQLite (one transaction)."""
        records = [self._sessions[i] for i in self._unsaved if i in self._sessions]
        statuses, self._statuses = self._statuses, {}
        self._unsaved.clear()
        if records or statuses:
            with self.store.transaction():
                self.store.save_meters([(r.session_id, r.meter_last or 0, r.meter_at or 0.0) for r in records])
                for (cp_id, connector), (status, error_code) in statuses.items():
                    self.store.set_connector_status(cp_id, connector, status, error_code)
