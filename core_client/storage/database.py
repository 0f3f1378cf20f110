"""Where the Core Client's state lives: one small interface over two engines, so the store, the
transaction record and the proxy outbox are written once. The engines: :mod:`core_client.storage.sqlite`
(a file, the default) and :mod:`core_client.storage.postgres` (a server several instances share);
:func:`core_client.storage.engines.open_database` opens the one a location names.

SQL is written once, in the subset both engines speak: ``?`` placeholders, ``ON CONFLICT`` upserts,
``RETURNING``; table definitions in SQLite's words (``INTEGER``, ``REAL``, ``INTEGER PRIMARY KEY
AUTOINCREMENT``), which :meth:`Database.ddl` turns into PostgreSQL's (64-bit ``BIGINT``, ``DOUBLE
PRECISION``, identity columns). Amounts and 256-bit ids are TEXT in both: neither engine has an integer
that wide. Rows are read by column name or position. Nothing is read lazily: a query returns its rows.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from pydantic import BeforeValidator

from core_client.errors import CoreClientError

POSTGRES_SCHEMES = ("postgresql", "postgres")
T = TypeVar("T")


class StorageError(CoreClientError):
    """The database cannot be reached or opened."""


class Conflict(CoreClientError):
    """A write refused because another instance changed what it was decided on since it was read: the
    store's thread runs the input that wrote it again, whole, on fresh state (:mod:`core_client.storage.serial`)."""


def is_postgres_url(location: str | Path) -> bool:
    """Whether ``location`` names a PostgreSQL database (``postgresql://...``) rather than a SQLite file."""
    return isinstance(location, str) and urlsplit(location).scheme in POSTGRES_SCHEMES


def as_location(value: Any) -> str | Path:
    """A configured database: a ``postgresql://`` URL as it is, anything else as the path of a SQLite file."""
    return value if is_postgres_url(value) else Path(value)


#: A settings field naming a database (a SQLite file or a PostgreSQL URL; libpq's PG* variables fill in
#: what the URL leaves out, e.g. PGPASSWORD).
Location = Annotated[Path | str, BeforeValidator(as_location)]


def is_database_error(error: BaseException) -> bool:
    """Whether ``error`` is the database's (SQLite's, PostgreSQL's, or its connection pool's)."""
    if isinstance(error, sqlite3.Error):
        return True
    psycopg, pool = sys.modules.get("psycopg"), sys.modules.get("psycopg_pool")
    return bool(psycopg and isinstance(error, psycopg.Error)) or bool(pool and isinstance(error, pool.PoolTimeout))


def lost_to_another(error: BaseException) -> bool:
    """Whether ``error`` is PostgreSQL breaking a deadlock (or a serialization failure) with another
    transaction: the statement was chosen to fail, and the same work run again after that other
    transaction finished succeeds."""
    return getattr(error, "sqlstate", None) in ("40P01", "40001")


def describe(location: str | Path) -> str:
    """``location`` fit for a log line or an error: a URL without its password."""
    if not is_postgres_url(location):
        return str(location)
    url = urlsplit(str(location))
    host = url.hostname or "(local socket)"
    port = f":{url.port}" if url.port else ""
    user = f"{url.username}@" if url.username else ""
    return f"{url.scheme}://{user}{host}{port}{url.path}"


class Rows(list):
    """A query's rows (each by column name or position), and how many rows a write changed."""

    rowcount: int = -1

    def fetchone(self) -> Any:
        return self[0] if self else None

    def fetchall(self) -> list:
        return list(self)


class Database:
    """The interface the Core Client's state is written against (see the module docstring)."""

    dialect: ClassVar[str]
    location: str | Path

    def __init__(self) -> None:
        self._local = threading.local()  # per thread: transaction depth, on-commit callbacks

    # -- engine specifics
    def _run(self, sql: str, params: Sequence[Any] | None, many: bool = False) -> Rows:
        raise NotImplementedError

    def _begin(self) -> None:
        raise NotImplementedError

    def _end(self, commit: bool) -> None:
        raise NotImplementedError

    def ddl(self, sql: str) -> str:
        """A table definition in this engine's words."""
        return sql

    def lock(self, name: str) -> None:
        """Inside a transaction: wait until no other transaction (of any instance) holds ``name``;
        held until this transaction ends."""

    def checkpoint(self) -> None:
        """Housekeeping that waits for the disk (run it in a worker thread)."""

    def renew(self) -> None:
        """After an outage, once the server answers: connect afresh (PostgreSQL)."""

    def close(self) -> None:
        raise NotImplementedError

    # -- the interface
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Rows:
        """Run one statement (``?`` placeholders); its rows."""
        return self._run(sql, params)

    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        self._run(sql, list(params), many=True)

    @property
    def in_transaction(self) -> bool:
        return bool(getattr(self._local, "depth", 0))

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """An atomic group of statements of this thread; nested uses join the outer transaction (in a
        piece of :meth:`grouped` work, the piece's own transactions stay atomic: savepoints)."""
        state = self._local
        if getattr(state, "depth", 0) and state.depth == getattr(state, "piece", 0):
            with self._savepoint():
                yield self
            return
        if getattr(state, "depth", 0):
            state.depth += 1
            try:
                yield self
            finally:
                state.depth -= 1
            return
        self._begin()
        state.depth, state.committed = 1, []
        try:
            yield self
        except BaseException:
            state.depth, state.committed = 0, []
            self._end(commit=False)
            raise
        state.depth = 0
        try:
            self._end(commit=True)
        except BaseException:
            state.committed = []
            raise
        callbacks, state.committed = state.committed, []
        for callback in callbacks:
            callback()

    def grouped(self, pieces: Sequence[Callable[[], T]]) -> list[T | BaseException]:
        """Run several pieces of work in one transaction ("group commit": one commit, on PostgreSQL one
        wait for the disk, instead of one each), each as if it ran alone: a piece that raises leaves
        none of its writes, and its own transactions are atomic within it. Each piece's result or
        exception, once the whole is committed; raises if the commit fails (then none is written)."""
        outcomes: list[T | BaseException] = []
        with self.transaction():
            for piece in pieces:
                try:
                    with self._savepoint():
                        self._local.piece = self._local.depth
                        outcomes.append(piece())
                except BaseException as error:  # the piece's caller's to handle
                    outcomes.append(error)
                finally:
                    self._local.piece = 0
        return outcomes

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        """Inside a transaction: what the block writes is undone if it raises (its commit callbacks dropped)."""
        state = self._local
        name, kept = f"piece{state.depth}", len(state.committed)
        self._run(f"SAVEPOINT {name}", None)
        state.depth += 1
        try:
            yield
            self._run(f"RELEASE SAVEPOINT {name}", None)  # fails if a statement of the block failed (PostgreSQL)
        except BaseException:
            del state.committed[kept:]
            self._run(f"ROLLBACK TO SAVEPOINT {name}", None)
            self._run(f"RELEASE SAVEPOINT {name}", None)
            raise
        finally:
            state.depth -= 1

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this thread's transaction is committed (never if it is rolled back)."""
        if self.in_transaction:
            self._local.committed.append(callback)
        else:
            callback()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({describe(self.location)})"
