"""Wake-ups between the Core Client instances of one operator on one PostgreSQL (LISTEN/NOTIFY).

What one instance decides may need another to act at once: the leader's event watcher records a new
session or the driver's stop at a charge point whose socket another instance holds (that one sends the
RemoteStart or RemoteStop); a charge point that connected here was held by another instance (that one
closes its old connection); a standby queued a chain job (the leader's chain worker sends it). Each
such change is in the database already; a notice only says "look now", so the one who must act does
not wait for its next poll (which still finds everything: a notice lost while a listener reconnects
costs a poll interval, never a decision).

- :meth:`Notices.charge_point` tells the holder of a charge point (payload ``cp:<id>``), :meth:`Notices.jobs`
  the leader (payload ``jobs``), on one channel per operator identity. Called on the store's thread once
  the change is committed (:meth:`core_client.storage.store.Store.on_commit`); a thread of its own sends
  them, so neither the event loop nor the store's thread waits for it.
- Every instance listens on a connection of its own (autocommit), in a thread (:meth:`Notices.listen`);
  when that connection ends (PostgreSQL restarted) it connects again, with a backoff, and then hears of
  every charge point and the jobs (whatever was said meanwhile is lost: look at everything now).

On SQLite there is one instance: :class:`LocalNotices` says and hears nothing.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Callable

from core_client.storage.database import Database
from core_client.storage.postgres import KEEPALIVES, PostgresDatabase

log = logging.getLogger("core_client.storage.notices")
JOBS = "jobs"
CHARGE_POINT = "cp:"
RECONNECT_S = (0.2, 2.0)  # the listener's backoff after its connection ended: first, most
STOP_CHECK_S = 0.5  # how often the listener looks whether it is to stop
HeardOf = Callable[[str | None], None]  # a charge point, or None: any (notices may have been lost)


def channel_of(identity: str) -> str:
    """The channel of an operator (its chain:escrow:operator identity): a short identifier."""
    return "evn_" + hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()


class LocalNotices:
    """One instance alone on its database (SQLite): nobody to tell, nothing to hear."""

    shared = False

    def charge_point(self, charge_point_id: str) -> None:
        """Tell the instance holding ``charge_point_id`` to look at its sessions now."""

    def jobs(self) -> None:
        """Tell the leader a chain job was queued."""

    def listen(self, charge_point: HeardOf, jobs: Callable[[], None]) -> None:
        """Hear the other instances (on the listener's thread): ``charge_point(id)`` when the holder of the
        charge point is to look at its sessions (``None``: any charge point), ``jobs()`` when a job was queued."""

    def close(self) -> None:
        """Stop sending and listening (waits for the threads)."""


class Notices(LocalNotices):
    """The notices of one operator's instances on a PostgreSQL server (see the module docstring)."""

    shared = True

    def __init__(self, db: PostgresDatabase, identity: str) -> None:
        self.db, self.channel = db, channel_of(identity)
        self._outbox: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._sender = threading.Thread(target=self._send, name="notices-out", daemon=True)
        self._sender.start()
        self._listener: threading.Thread | None = None

    def charge_point(self, charge_point_id: str) -> None:
        self._outbox.put(CHARGE_POINT + charge_point_id)

    def jobs(self) -> None:
        self._outbox.put(JOBS)

    def _send(self) -> None:
        """Send what is handed over, what gathered meanwhile in one statement, until :meth:`close` (a
        failure is logged: the others' poll finds the change)."""
        sending = True
        while sending:
            payloads = {self._outbox.get()}
            while not self._outbox.empty():
                payloads.add(self._outbox.get())
            sending = None not in payloads
            payloads.discard(None)
            if not payloads:
                continue
            try:
                self.db.execute(
                    "SELECT pg_notify(?, p) FROM unnest(CAST(? AS text[])) AS p", (self.channel, sorted(payloads))
                )
            except Exception as error:
                log.warning("could not notify the other instances (%s): their poll finds it", _last_line(error))

    def listen(self, charge_point: HeardOf, jobs: Callable[[], None]) -> None:
        def heard(payload: str | None) -> None:
            if payload is None or payload == JOBS:
                jobs()
            if payload is None or payload.startswith(CHARGE_POINT):
                charge_point(None if payload is None else payload.removeprefix(CHARGE_POINT))

        self._listener = threading.Thread(target=self._listen, args=(heard,), name="notices-in", daemon=True)
        self._listener.start()

    def _listen(self, heard: Callable[[str | None], None]) -> None:
        import psycopg
        from psycopg import sql

        delay, lost = RECONNECT_S[0], False
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.db.location, autocommit=True, connect_timeout=5, **KEEPALIVES) as connection:
                    connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    if lost:
                        log.info("listening to the other instances again")
                    delay, lost = RECONNECT_S[0], False
                    heard(None)
                    while not self._stop.is_set():
                        for notice in connection.notifies(timeout=STOP_CHECK_S):
                            heard(notice.payload)
            except psycopg.Error as error:
                if not lost:
                    log.warning("not listening to the other instances (%s): connecting again", _last_line(error))
                lost = True
            self._stop.wait(delay)
            delay = min(delay * 2, RECONNECT_S[1])

    def close(self) -> None:
        self._stop.set()
        self._outbox.put(None)
        self._sender.join(timeout=2)
        if self._listener is not None:
            self._listener.join(timeout=STOP_CHECK_S + 6)


def _last_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[-1] if text else type(error).__name__


def notices_for(db: Database, identity: str) -> LocalNotices:
    """The notices of an instance on ``db``: shared ones on PostgreSQL, none on SQLite."""
    return Notices(db, identity) if isinstance(db, PostgresDatabase) else LocalNotices()
