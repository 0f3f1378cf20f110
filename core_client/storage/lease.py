"""The signer lease: among the Core Client instances of one operator that share a database, exactly one
signs with the operator's key (runs the chain worker and its TxSender) at a time.

On PostgreSQL the lease is a session-level advisory lock, held on a connection of its own (never a
pooled one): PostgreSQL releases it the moment that connection ends, so an instance that dies (even
SIGKILLed: its kernel closes the socket) or loses the server (TCP keepalives, a few seconds) stops
holding it, and another instance's next :meth:`Lease.try_acquire` gets it. The leading daemon calls
:meth:`Lease.still_held` every second: a lost connection means the lease may soon be another's, so the
daemon ends itself (and signs nothing more) before the server lets the lock go.

On SQLite there is one instance (the file is its own), so the lease is always held.
"""

from __future__ import annotations

import logging
from typing import Any

from core_client.errors import CoreClientError
from core_client.storage.database import Database, PostgresDatabase, advisory_key, describe

log = logging.getLogger("core_client.storage.lease")

# The holder gives up a silent server within ~5 s (tcp_user_timeout also covers a query waiting for its
# answer); the server drops a silent holder (and so its lock) after ~11 s (idle + interval * count): a
# holder cut off from the server stops signing before another instance can take the lease.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 2,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 5000,
}
SERVER_KEEPALIVES = ("SET tcp_keepalives_idle = 5", "SET tcp_keepalives_interval = 2", "SET tcp_keepalives_count = 3")


class LeaseLost(CoreClientError):
    """This instance no longer holds the signer lease (its connection to PostgreSQL ended)."""


class Lease:
    """One named lease in ``db`` (see the module docstring). Not thread-safe: use it from one thread."""

    def __init__(self, db: Database, name: str) -> None:
        self.db, self.name, self.key = db, name, advisory_key(f"lease:{name}")
        self._connection: Any = None  # PostgreSQL: the connection that holds the lock

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
            self.release()
            return False

    def release(self) -> None:
        """Let the lease go (closing its connection ends the advisory lock)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
            log.info("lease %s released", self.name)
