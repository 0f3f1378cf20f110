"""Where the Core Client's state lives: one small interface over two engines, so the store, the
transaction record and the proxy outbox are written once.

- :class:`SqliteDatabase`: a file (the default, embedded). One connection in WAL mode, shared by the
  threads of one process under a lock; a transaction is ``BEGIN IMMEDIATE`` (SQLite has one writer).
- :class:`PostgresDatabase`: a PostgreSQL server that several Core Client instances can share
  (psycopg 3 and its connection pool). A statement outside a transaction borrows a pooled connection
  in autocommit mode; a transaction keeps one connection for the thread that opened it, at READ
  COMMITTED (PostgreSQL's default), so what must not race across instances is made atomic in the SQL
  itself (``INSERT ... ON CONFLICT``, ``UPDATE ... RETURNING``) or serialised with :meth:`Database.lock`.

SQL is written once, in the subset both engines speak: ``?`` placeholders, ``ON CONFLICT`` upserts,
``RETURNING``; table definitions in SQLite's words (``INTEGER``, ``REAL``, ``INTEGER PRIMARY KEY
AUTOINCREMENT``), which :meth:`Database.ddl` turns into PostgreSQL's (64-bit ``BIGINT``, ``DOUBLE
PRECISION``, identity columns). Amounts and 256-bit ids are TEXT in both: neither engine has an integer
that wide. Rows are read by column name or position. Nothing is read lazily: a query returns its rows.
"""

from __future__ import annotations

import hashlib
import re
import select
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BeforeValidator

from core_client.errors import CoreClientError

POSTGRES_SCHEMES = ("postgresql", "postgres")
# Every PostgreSQL connection gives up a silent server within ~5 s (tcp_user_timeout also covers a query
# waiting for its answer) instead of waiting for it for ever: a statement then fails, it does not hang.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 2,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 5000,
}


STATEMENT_WAIT_S = 3.0  # PostgreSQL: how long a statement waits for a pooled connection


class StorageError(CoreClientError):
    """The database cannot be reached or opened."""


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


def describe(location: str | Path) -> str:
    """``location`` fit for a log line or an error: a URL without its password."""
    if not is_postgres_url(location):
        return str(location)
    url = urlsplit(str(location))
    host = url.hostname or "(local socket)"
    port = f":{url.port}" if url.port else ""
    user = f"{url.username}@" if url.username else ""
    return f"{url.scheme}://{user}{host}{port}{url.path}"


def open_database(location: str | Path) -> Database:
    """The database at ``location``: a ``postgresql://`` URL, else the path of a SQLite file."""
    if is_postgres_url(location):
        return PostgresDatabase(str(location))
    return SqliteDatabase(Path(location))


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
        """An atomic group of statements of this thread; nested uses join the outer transaction."""
        state = self._local
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

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this thread's transaction is committed (never if it is rolled back)."""
        if self.in_transaction:
            self._local.committed.append(callback)
        else:
            callback()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({describe(self.location)})"


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


class PostgresDatabase(Database):
    dialect = "postgresql"
    _TYPES: ClassVar[list[tuple[re.Pattern, str]]] = [
        (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
        (re.compile(r"\bINTEGER\b"), "BIGINT"),
        (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    ]

    def __init__(self, url: str, max_connections: int = 4, connect_timeout: float = 10.0) -> None:
        super().__init__()
        import psycopg  # here: a Core Client on SQLite never loads the driver

        self.location = url
        try:  # one connection first: its error says why (the pool would only time out)
            psycopg.connect(url, connect_timeout=max(2, int(connect_timeout)), **KEEPALIVES).close()
        except psycopg.Error as error:
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            raise StorageError(f"cannot connect to PostgreSQL at {describe(url)}: {reason}") from None
        self._max_connections = max_connections
        self.pool = self._new_pool()

    def _new_pool(self) -> Any:
        from psycopg_pool import ConnectionPool

        return ConnectionPool(
            str(self.location),
            min_size=1,
            max_size=self._max_connections,
            kwargs={"autocommit": True, "row_factory": _pg_row, **KEEPALIVES},
            # after the server restarted, the pool's old connections are replaced, not handed out to fail
            check=_still_open,
            # a statement waits this long for a connection: while the server is away, each fails after
            # it, not after the connect timeout (the answers that need the store wait for it)
            timeout=STATEMENT_WAIT_S,
            name="core-client",
        )

    def renew(self) -> None:
        """A new pool now that the server answers again (the leader-to-be has just reached it): the old
        one, after an outage, reconnects with a backoff that grows to 8 s and more."""
        old, self.pool = self.pool, self._new_pool()
        old.close(timeout=1)

    def ddl(self, sql: str) -> str:
        for pattern, replacement in self._TYPES:
            sql = pattern.sub(replacement, sql)
        return sql

    def _run(self, sql: str, params: Sequence[Any] | None, many: bool = False) -> Rows:
        query = _pg_query(sql) if params is not None else sql
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            return _pg_rows(connection, query, params, many)
        with self.pool.connection() as connection:
            return _pg_rows(connection, query, params, many)

    def _begin(self) -> None:
        connection = self.pool.getconn()
        try:
            connection.execute("BEGIN")
        except BaseException:
            self.pool.putconn(connection)
            raise
        self._local.connection = connection

    def _end(self, commit: bool) -> None:
        connection, self._local.connection = self._local.connection, None
        try:
            connection.execute("COMMIT" if commit else "ROLLBACK")
        except BaseException:
            if commit and not connection.closed:
                connection.execute("ROLLBACK")
            raise
        finally:
            self.pool.putconn(connection)  # a broken connection is thrown away by the pool

    def lock(self, name: str) -> None:
        self.execute("SELECT pg_advisory_xact_lock(?)", (advisory_key(name),))

    def close(self) -> None:
        self.pool.close()


def _still_open(connection: Any) -> None:
    """The pool's check of an idle connection before it hands it out, without a round trip: an idle
    connection has nothing to read unless the server has closed it (a restart: its last word and the
    end of the stream are waiting), so a readable socket means the connection is gone (raise: the pool
    takes another). A silent server is found by the connection's keepalives instead."""
    import psycopg

    if connection.closed or connection.broken or select.select([connection.fileno()], [], [], 0)[0]:
        connection.close()  # closed, the pool throws it away (one that looks idle would come back)
        raise psycopg.OperationalError("the server closed this connection")


def advisory_key(name: str) -> int:
    """The 64-bit number of PostgreSQL's advisory lock called ``name``."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@lru_cache(maxsize=512)
def _pg_query(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _pg_rows(connection: Any, query: str, params: Any, many: bool) -> Rows:
    with connection.cursor() as cursor:
        if many:
            cursor.executemany(query, params)
            return Rows()
        cursor.execute(query, params)
        rows = Rows(cursor.fetchall() if cursor.description else [])
        rows.rowcount = cursor.rowcount
        return rows


class _PgRow(tuple):
    """A row by column name or position, like :class:`sqlite3.Row` (``dict(row)`` works too)."""

    _index: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _pg_row(cursor: Any) -> Callable[[Sequence[Any]], _PgRow]:
    index = {column.name: i for i, column in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> _PgRow:
        row = _PgRow(values)
        row._index = index
        return row

    return make
