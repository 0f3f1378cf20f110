"""The signer lease: among the Core Client instances of one operator that share a database, exactly one
signs with the operator's key (runs the chain worker and its TxSender) at a time.

On PostgreSQL the lease is a session-level advisory lock, held on a connection of its own (never a
pooled one): PostgreSQL releases it the moment that connection ends, so an instance that dies (even
SIGKILLed: its kernel closes the socket) or goes silent (the server's TCP keepalives drop it after
SERVER_DROPS_SILENT_HOLDER_S) stops holding it, and another instance's next :meth:`Lease.try_acquire`
gets it. The leading daemon has the lease :meth:`Lease.watch`-ed: a thread checks it every CHECK_EVERY_S and counts
it lost when a check fails or has no answer within CHECK_TIMEOUT_S (a restarted server, a network
partition): then the lease may soon be another's, so the daemon ends at once (and signs nothing more) long
before the server lets the lock go; and since the lock may just have been let go by a holder that has not
noticed yet, a new holder waits GIVES_UP_WITHIN_S before it signs.

On SQLite there is one instance (the file is its own), so the lease is always held.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from core_client.errors import CoreClientError
from core_client.storage.database import Database, describe
from core_client.storage.postgres import KEEPALIVES, PostgresDatabase, advisory_key

log = logging.getLogger("core_client.storage.lease")

# The server drops a silent holder (and so its lock) after SERVER_DROPS_SILENT_HOLDER_S (idle + interval *
# count); the holder checks its lease every CHECK_EVERY_S and counts it lost when a check has no answer
# within CHECK_TIMEOUT_S (or its connection's keepalives give the server up, ~5 s): a holder cut off from
# the server stops signing (within GIVES_UP_WITHIN_S) before another instance can take the lease.
SERVER_KEEPALIVE = {"idle": 5, "interval": 2, "count": 3}
SERVER_KEEPALIVES = tuple(f"SET tcp_keepalives_{name} = {value}" for name, value in SERVER_KEEPALIVE.items())
SERVER_DROPS_SILENT_HOLDER_S = SERVER_KEEPALIVE["idle"] + SERVER_KEEPALIVE["interval"] * SERVER_KEEPALIVE["count"]
CHECK_EVERY_S = 1.0
CHECK_TIMEOUT_S = 2.0
GIVES_UP_WITHIN_S = CHECK_EVERY_S + CHECK_TIMEOUT_S


class LeaseLost(CoreClientError):
    """This instance no longer holds the signer lease (its connection to PostgreSQL ended or went silent)."""


class Lease:
    """One named lease in ``db`` (see the module docstring). Not thread-safe: use it from one thread
    (and, while it is watched, only :meth:`release`)."""

    def __init__(self, db: Database, name: str) -> None:
        self.db, self.name, self.key = db, name, advisory_key(f"lease:{name}")
        self._connection: Any = None  # PostgreSQL: the connection that holds the lock
        self._watcher: threading.Thread | None = None
        self._unwatched = threading.Event()

    @property
    def shared(self) -> bool:
        """Whether other instances can compete for it (PostgreSQL)."""
        return isinstance(self.db, PostgresDatabase)

    @property
    def held(self) -> bool:
        """Whether this instance held the lease at its last acquire or check (no round trip)."""
        return not self.shared or self._connection is not None

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; whether this instance holds it now."""
        if self.held:
            return self.still_held()
        import psycopg

        try:
            connection = psycopg.connect(self.db.location, autocommit=True, connect_timeout=5, **KEEPALIVES)
        except psycopg.Error as error:
            log.warning("lease %s: cannot reach %s: %s", self.name, describe(self.db.location), error)
            return False
        try:
            for statement in SERVER_KEEPALIVES:
                connection.execute(statement)
            taken = connection.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]
        except psycopg.Error as error:
            connection.close()
            log.warning("lease %s: %s", self.name, error)
            return False
        if not taken:
            connection.close()
            return False
        self._connection = connection
        log.info("lease %s taken", self.name)
        return True

    def still_held(self) -> bool:
        """Whether the lease is still this instance's (one round trip on its connection); False once
        the connection is lost, and then it is let go for good (take it again with try_acquire)."""
        if not self.shared:
            return True
        if self._connection is None:
            return False
        import psycopg

        try:
            self._connection.execute("SELECT 1")
            return True
        except psycopg.Error as error:
            log.warning("lease %s lost: %s", self.name, error)
            self._let_go()
            return False

    def watch(self, lost: Callable[[str], None]) -> None:
        """Check the lease every CHECK_EVERY_S in a thread of its own (an event loop that waits on the
        database cannot delay it); once a check fails or has no answer within CHECK_TIMEOUT_S, call
        ``lost(why)`` from that thread, once, and stop watching. :meth:`release` ends the watch first."""
        if not self.shared:
            return
        self._unwatched.clear()

        def run() -> None:
            while not self._unwatched.wait(CHECK_EVERY_S):
                answer = _within(self.still_held, CHECK_TIMEOUT_S)
                if self._unwatched.is_set() or answer:
                    continue
                lost(
                    f"PostgreSQL did not answer within {CHECK_TIMEOUT_S:g}s"
                    if answer is None
                    else "its connection to PostgreSQL ended"
                )
                return

        self._watcher = threading.Thread(target=run, name=f"lease {self.name}", daemon=True)
        self._watcher.start()

    def release(self) -> None:
        """Let the lease go (closing its connection ends the advisory lock), after ending the watch."""
        self._unwatched.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(CHECK_TIMEOUT_S + 1)
        self._watcher = None
        self._let_go()

    def _let_go(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
            log.info("lease %s released", self.name)


def _within(check: Callable[[], bool], timeout: float) -> bool | None:
    """``check()`` in a thread of its own: its answer, or None when it has none within ``timeout`` (the
    thread is left waiting; it is a daemon thread and does not keep the process alive)."""
    answers: list[bool] = []
    thread = threading.Thread(target=lambda: answers.append(check()), name="lease check", daemon=True)
    thread.start()
    thread.join(timeout)
    return answers[0] if answers else None
