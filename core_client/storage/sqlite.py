"""The embedded engine: a SQLite file (the default). One connection in WAL mode, shared by the threads
of one process under a lock; a transaction is ``BEGIN IMMEDIATE`` (SQLite has one writer)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core_client.storage.database import Database, Rows, StorageError


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.location = self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        except sqlite3.Error as error:
            raise StorageError(f"cannot open the database {path}: {error}") from None
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives the process being killed (SIGKILL); only an OS crash or power
        # loss can lose the last commits, and the chain worker re-checks chain state for exactly that.
        # FULL would make every StatusNotification wait for the disk inside the event loop.
        self.db.execute("PRAGMA synchronous=NORMAL")
        # no checkpoints (the only writes that wait for the disk) on this connection: the daemon runs
        # checkpoint() in a thread; SQLite checkpoints at close as well
        self.db.execute("PRAGMA wal_autocheckpoint=0")
        self._lock = threading.RLock()  # the connection is shared by threads (the record log anchors in one)

    def _run(self, sql: str, params: Sequence[Any] | None, many: bool = False) -> Rows:
        with self._lock:
            cursor = self.db.executemany(sql, params or []) if many else self.db.execute(sql, params or ())
            rows = Rows(cursor.fetchall())
            rows.rowcount = cursor.rowcount
            return rows

    def _begin(self) -> None:
        self._lock.acquire()  # held by this thread until the transaction ends
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise

    def _end(self, commit: bool) -> None:
        try:
            if commit:
                try:
                    self.db.execute("COMMIT")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
            else:
                self.db.execute("ROLLBACK")
        finally:
            self._lock.release()

    def user_version(self) -> int:
        """SQLite's own version stamp of the file (the store's before :mod:`migrations` existed)."""
        return int(self.execute("PRAGMA user_version").fetchone()[0])

    def has_table(self, name: str) -> bool:
        return bool(self.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))[0][0])

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file, on a connection of the calling thread (run it
        in a worker thread: it waits for the disk, which the event loop must not)."""
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def close(self) -> None:
        with self._lock:
            self.db.close()
